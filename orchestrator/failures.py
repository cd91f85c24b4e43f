"""The error a node records for an exception nobody raised on purpose, and so what the API shows of it.

An executor's own exception is recorded with its message and a short traceback of its own frames
(not of the exceptions it was raised from). A database error, raised by the store or by an
executor's own database calls, carries the SQL statement (and, on an engine not made by `db.py`,
its parameters): it is recorded as `STORE_ERROR` with its type only, and logged in full to the
worker's log, which only operators read.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from orchestrator.redaction import redact_text

log = logging.getLogger(__name__)

# where the exception classes of the database layers live: SQLAlchemy and the DB-API drivers
_DATABASE_MODULES = ("sqlalchemy.", "pymysql.", "MySQLdb.", "mysql.connector.", "sqlite3", "psycopg")
_SQL_MARKERS = ("[SQL:", "[parameters:")


def is_database_error(exc: BaseException) -> bool:
    """Whether `exc` comes from the database layer (its text may hold SQL)."""
    text = str(exc)
    if any(marker in text for marker in _SQL_MARKERS):
        return True
    return any(kind.__module__.startswith(_DATABASE_MODULES) for kind in type(exc).__mro__)


def unexpected(exc: BaseException, where: str) -> dict[str, Any]:
    """The node error for `exc`, raised while running `where` (`instance/node`)."""
    kind = type(exc).__name__
    if is_database_error(exc):
        log.error("%s: a database error, recorded as STORE_ERROR", where, exc_info=exc)
        message = f"a database error ({kind}); the worker's log has the details"
        return {"code": "STORE_ERROR", "message": message, "type": kind}
    return {
        "code": "EXECUTOR_ERROR",
        # an executor's own error may quote a URL with its credentials (requests' errors do)
        "message": redact_text(f"{kind}: {exc}"),
        "type": kind,
        "traceback": redact_text("".join(traceback.format_exception(exc, limit=8, chain=False))),
    }
