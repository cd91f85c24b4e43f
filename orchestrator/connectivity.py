"""Whether the database answers, asked once when a command starts, and the one line that says why
not: a wrong user, a server that is down or a database that does not exist is a problem of the
operator's settings, and a traceback of sixty frames buries the one line that names it.

URLs are shown with their password hidden (`mysql+pymysql://orch:***@db:3306/orchestrator`), and a
driver message is scrubbed of the password too, should a driver ever echo it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from orchestrator.errors import OrchestratorError
from orchestrator.redaction import MASK, redact_url


class Unreachable(OrchestratorError):
    """A service a command needs does not answer, or refuses the credentials it was given."""

    code = "UNREACHABLE"


def shown_url(url: str) -> str:
    """`url` as it may be printed: SQLAlchemy's rendering with the password hidden, or for what
    SQLAlchemy cannot parse, the generic redaction (password, query values)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        # not even SQLAlchemy's shape: show it only if it is URL-like, with its secrets redacted
        return redact_url(url) if "://" in url else MASK


def _password(url: str) -> str | None:
    try:
        password = make_url(url).password
    except ArgumentError:
        return None
    return str(password) if password else None


def one_line(text: str, url: str) -> str:
    """`text` on one line, without the password of `url` in it."""
    password = _password(url)
    if password:
        text = text.replace(password, MASK)
    return " ".join(text.split())


def driver_reason(exc: DBAPIError, url: str) -> str:
    """What the database driver said, without SQLAlchemy's wrapping: `Access denied for user
    'orch'@'10.0.0.5' (MySQL error 1045)`, `unable to open database file`."""
    orig = exc.orig
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int):  # PyMySQL and mysqlclient: (error number, message)
        text = f"{args[1]} (MySQL error {args[0]})"
    else:
        text = str(orig) or type(orig).__name__
    return one_line(text, url)


def check_database(url: str, setting: str = "ORCH_DATABASE_URL") -> None:
    """Connect once to the database of `url` and let go. Raises Unreachable, with one line naming the
    URL (password hidden), the setting it came from and the driver's reason, when the URL is not
    usable or the server refuses or does not answer."""
    from orchestrator.database_urls import url_problem
    from orchestrator.db import make_engine  # the engine factory pulls in the SQL dialects: only now

    shown = shown_url(url)
    problem = url_problem(url, setting)
    if problem:
        raise Unreachable(f"{problem} ({shown})")
    try:
        engine = make_engine(url, pool_size=1)
    except ArgumentError as exc:
        # the parser's message never holds the URL; a missing dialect's names only the plugin
        reason = one_line(str(exc), url)
        raise Unreachable(f"{setting} is not a usable database URL ({shown}): {reason}") from None
    except ImportError as exc:
        reason = one_line(str(exc), url)
        if exc.name == "MySQLdb":
            reason += " (mysql+mysqldb:// needs mysqlclient: pip install 'celery-orchestrator[mysqlclient]')"
        raise Unreachable(f"{setting} ({shown}) needs a database driver that is missing: {reason}") from None
    except OSError as exc:  # SQLite: the file's directory cannot be made
        reason = one_line(f"{exc.strerror}: {exc.filename}", url)
        raise Unreachable(f"cannot open the database {shown} ({setting}): {reason}") from None
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        raise Unreachable(
            f"cannot connect to the database {shown} ({setting}): {driver_reason(exc, url)}"
        ) from None
    finally:
        engine.dispose()
