"""Which database URLs the product accepts, and which MySQL driver a URL names.

MySQL/MariaDB is reached through one of two drivers, named in the URL's scheme:

- `mysql+pymysql://` (the default, pure Python): what the API's gevent workers need, since its
  socket waits yield to the other greenlets;
- `mysql+mysqldb://` (mysqlclient, the C client library; the `mysqlclient` extra): less CPU per
  statement in the workers, but its calls block a gevent loop while they wait on the server.

A bare `mysql://` is refused rather than taken as SQLAlchemy's default (mysqldb): a URL copied from
another tool would otherwise switch the driver, and fail on a machine without mysqlclient, unnoticed.
SQLite (`sqlite:///...`, the embedded profile) needs no choice.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MYSQL_BACKENDS = ("mysql", "mariadb")
# the drivers the product is tested with, in order of preference
MYSQL_DRIVERS = ("pymysql", "mysqldb")
DEFAULT_MYSQL_DRIVER = "pymysql"


def _choose(setting: str, scheme: str) -> str:
    return (
        f"{setting} must name its MySQL driver: {scheme}+pymysql:// (PyMySQL, the default) or "
        f"{scheme}+mysqldb:// (mysqlclient, `pip install 'celery-orchestrator[mysqlclient]'`)"
    )


def url_problem(url: str, setting: str = "ORCH_DATABASE_URL") -> str | None:
    """Why `url` is not a database URL the product supports, in one line naming `setting`; None if
    it is one. URLs SQLAlchemy cannot parse are left to the connection check, which says so (with
    the password hidden), and so are backends other than MySQL's."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    backend = parsed.get_backend_name()
    if backend not in MYSQL_BACKENDS:
        return None
    scheme = parsed.drivername
    if "+" not in scheme:
        return _choose(setting, backend) + f", not a bare {backend}://"
    driver = parsed.get_driver_name()
    if driver not in MYSQL_DRIVERS:
        return _choose(setting, backend) + f"; {driver!r} is not one of them"
    return None


def check_url(url: str, setting: str = "ORCH_DATABASE_URL") -> str:
    """`url`, or a ValueError (naming `setting`) if `url_problem` finds one."""
    problem = url_problem(url, setting)
    if problem:
        raise ValueError(problem)
    return url


def mysql_driver(url: str) -> str | None:
    """The MySQL driver `url` names (`pymysql`, `mysqldb`), or None for another backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in MYSQL_BACKENDS:
        return None
    return parsed.get_driver_name()


def with_driver(url: str, driver: str) -> str:
    """`url` with the MySQL driver `driver` instead of its own (password kept: for connecting)."""
    parsed = make_url(url)
    return parsed.set(drivername=f"{parsed.get_backend_name()}+{driver}").render_as_string(
        hide_password=False
    )
