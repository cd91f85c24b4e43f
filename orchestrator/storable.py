"""What the store can hold: an executor's value (a node's output, a checkpoint) is checked before it
is written as JSON, and a write the database refuses all the same is told apart from a passing
failure, so such a value fails its node with a clear code instead of a driver error whose text (the
SQL statement and its parameters) would end up in the node's error.

The limits are the store's own: MariaDB's JSON_VALID refuses a document nested 32 levels deep (its
JSON columns are checked with it), MySQL refuses one deeper than 100 levels; SQLite (the embedded
profile) is held to MySQL's limit, so a workflow that runs there runs on MySQL too. A value is at most
`MAX_BYTES` as JSON: half of MariaDB's default `max_allowed_packet` (16 MiB), which the whole
statement must fit in, escaped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, StatementError

from orchestrator.errors import NotStorable

MAX_DEPTH_MARIADB = 31
MAX_DEPTH = 100
MAX_BYTES = 8 * 1024 * 1024
# MySQL/MariaDB errors that refuse the value itself, not the connection or a lock: a CHECK constraint
# (MariaDB's json_valid), invalid JSON text, a document too deep, data too long, a packet too large
_REFUSED_VALUE = {4025, 3140, 3157, 1406, 1153, 1301}


def max_depth(engine: Engine) -> int:
    """How deeply the store behind `engine` nests JSON arrays and objects."""
    return MAX_DEPTH_MARIADB if getattr(engine.dialect, "is_mariadb", False) else MAX_DEPTH


def check(engine: Engine, value: Any, error: type[NotStorable], what: str) -> None:
    """Raise `error` when `value` cannot be stored as JSON in the store behind `engine`."""
    reason = problem(value, max_depth(engine))
    if reason is not None:
        raise error(f"{what} cannot be stored: {reason}")


@contextmanager
def refusals(error: type[NotStorable], what: str) -> Iterator[None]:
    """Turn a write that the store refused for its value into `error`, with no driver text in it;
    other failures (a deadlock, a lost connection) pass through to be retried."""
    try:
        yield
    except (DBAPIError, StatementError) as exc:
        if not refused_value(exc):
            raise
        raise error(f"{what} cannot be stored: the store refused it as JSON") from None


def problem(value: Any, depth_limit: int) -> str | None:
    """Why `value` cannot be stored as JSON, or None when it can. Never recurses, so a value nested
    far deeper than any limit is measured without exhausting the stack."""
    if _deeper_than(value, depth_limit):
        return f"it is nested more than {depth_limit} levels deep (the store's limit)"
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:  # a set, a datetime, NaN, a cycle...
        return f"it is not plain JSON ({exc})"
    if len(text.encode()) > MAX_BYTES:
        return f"it is larger than {MAX_BYTES // (1024 * 1024)} MiB as JSON"
    return None


def _deeper_than(value: Any, limit: int) -> bool:
    level: list[Any] = [value]
    depth = 0
    while level:
        containers = [v for v in level if isinstance(v, dict | list | tuple)]
        if not containers:
            return False
        depth += 1
        if depth > limit:
            return True
        level = [item for c in containers for item in (c.values() if isinstance(c, dict) else c)]
    return False


def refused_value(exc: BaseException) -> bool:
    """Whether a failed write was refused for the value it carried (another attempt would be too),
    rather than for a passing reason (a deadlock, a lost connection)."""
    if isinstance(exc, DBAPIError):
        args: tuple[Any, ...] = tuple(getattr(exc.orig, "args", ()))
        return bool(args) and args[0] in _REFUSED_VALUE
    # a value the driver could not even encode: the statement never reached the store
    return isinstance(exc, StatementError) and isinstance(exc.orig, TypeError | ValueError)
