"""Reading query strings into typed values; every problem is a 422 naming the parameter.

Unknown parameters are ignored, as most HTTP APIs do (cache busters and tracing parameters pass).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from flask import request

from api.requests import TAG_KEY
from orchestrator import logs
from orchestrator.definitions import MAX_MAP_ITEMS
from orchestrator.errors import Problem, ValidationError
from orchestrator.queries import Cursor, InstanceFilter
from orchestrator.states import InstanceStatus, NodeStatus
from orchestrator.views import MAX_ITEMS_PAGE

MAX_INSTANCE_PAGE = 500
DEFAULT_INSTANCE_PAGE = 50
MAX_SCHEDULE_PAGE = 500
DEFAULT_SCHEDULE_PAGE = 100
MAX_LIMIT_PAGE = 500
DEFAULT_LIMIT_PAGE = 100
LIMIT_KINDS = ("concurrency", "rate")
MAX_LOG_PAGE = 5000
DEFAULT_LOG_PAGE = 1000
_MAX_ID = 2**63 - 1
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}", re.ASCII)
_MAX_TEXT = 255  # the longest name, id or tag value a filter can usefully hold
_EARLIEST = datetime(1970, 1, 1)
_LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999)


def _invalid(name: str, message: str, code: str = "VALIDATION_ERROR") -> ValidationError:
    return ValidationError(f"invalid query parameter {name!r}", [Problem(name, message, code)])


def integer(name: str, default: int | None, minimum: int, maximum: int) -> int | None:
    """The parameter as an integer in [minimum, maximum]; `default` when absent."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not _INTEGER.fullmatch(raw.strip()):
        raise _invalid(name, "must be an integer", "TYPE_MISMATCH")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise _invalid(name, f"must be between {minimum} and {maximum}")
    return value


def text(name: str) -> str | None:
    value = request.args.get(name)
    if value is not None and len(value) > _MAX_TEXT:
        raise _invalid(name, f"must be at most {_MAX_TEXT} characters")
    return value or None


def timestamp(name: str) -> datetime | None:
    """An ISO 8601 time (`2024-05-01T12:00:00Z`; without an offset it is UTC) as naive UTC.

    Every such time is accepted: one before 1970 or past year 9999 in UTC is held at that bound, which
    selects the same rows (the store holds no time outside them) and keeps the value storable.
    """
    value = request.args.get(name)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _invalid(name, "must be an ISO 8601 time such as 2024-05-01T12:00Z", "TYPE_MISMATCH") from None
    offset = parsed.utcoffset()
    naive = parsed.replace(tzinfo=None)
    if offset:
        try:
            naive -= offset
        except OverflowError:  # an offset that moves the time past year 1 or 9999
            naive = _EARLIEST if offset > timedelta(0) else _LATEST
    return min(max(naive, _EARLIEST), _LATEST)


def instance_filter() -> InstanceFilter:
    """`status` (repeatable or comma-separated), `workflow`, `tag=key:value` (repeatable), `externalId`,
    `delayed` (true: pending with a startAt to come; false: the others)."""
    statuses = [s.strip() for value in request.args.getlist("status") for s in value.split(",") if s.strip()]
    known = {s.value for s in InstanceStatus}
    unknown = [s for s in statuses if s not in known]
    if unknown:
        raise _invalid("status", f"must be among {', '.join(sorted(known))}; got {unknown[0][:64]!r}")
    tags = []
    for value in request.args.getlist("tag"):
        if not value:  # an empty parameter is no filter, as for every other parameter
            continue
        key, sep, wanted = value.partition(":")
        if not sep or not TAG_KEY.fullmatch(key) or len(wanted) > 1024:
            raise _invalid("tag", "must be key:value, the key 1-128 letters, digits, '_', '.', '/' or '-'")
        tags.append((key, wanted))
    return InstanceFilter(
        statuses=tuple(dict.fromkeys(statuses)),
        workflow=text("workflow"),
        tags=tuple(tags),
        external_id=text("externalId"),
        delayed=boolean("delayed"),
    )


def boolean(name: str) -> bool | None:
    """`true` or `false`; None when absent or empty."""
    raw = request.args.get(name)
    if not raw:
        return None
    if raw not in ("true", "false"):
        raise _invalid(name, "must be true or false", "TYPE_MISMATCH")
    return raw == "true"


def instance_page() -> tuple[int, Cursor | None]:
    """`limit` (default 50, at most 500) and `cursor` (a `nextCursor` from a previous page)."""
    limit = integer("limit", DEFAULT_INSTANCE_PAGE, 1, MAX_INSTANCE_PAGE)
    assert limit is not None
    cursor = request.args.get("cursor")
    if cursor is not None and len(cursor) > 512:
        raise _invalid("cursor", "is not a cursor returned by this API")
    return limit, Cursor.decode(cursor) if cursor else None


def log_filter() -> dict[str, Any]:
    """Keyword arguments of `logs.query` from `nodeId`, `level`, `since`, `until`, `afterId`, `limit`."""
    level = request.args.get("level") or None
    if level is not None and level not in logs.LEVELS:
        raise _invalid("level", f"must be one of {', '.join(logs.LEVELS)}")
    return {
        "node_id": text("nodeId"),
        "level": level,
        "since": timestamp("since"),
        "until": timestamp("until"),
        "after_id": integer("afterId", None, 0, _MAX_ID),
        "limit": integer("limit", DEFAULT_LOG_PAGE, 1, MAX_LOG_PAGE),
    }


def item_page() -> tuple[str | None, int, int | None]:
    """`status`, `limit` and `after` of a map node's items (GET .../nodes/<map>/items)."""
    status = text("status")
    if status is not None and status not in {s.value for s in NodeStatus}:
        raise _invalid("status", f"must be one of {', '.join(s.value for s in NodeStatus)}")
    limit = integer("limit", 100, 1, MAX_ITEMS_PAGE)
    after = integer("after", None, -1, MAX_MAP_ITEMS)
    return status, int(limit or 100), after


def schedule_page() -> tuple[int, str | None]:
    """`limit` and `after` (a schedule's name: the page starts after it) of GET /schedules."""
    limit = integer("limit", DEFAULT_SCHEDULE_PAGE, 1, MAX_SCHEDULE_PAGE)
    return int(limit or DEFAULT_SCHEDULE_PAGE), text("after")


def limit_page() -> tuple[int, tuple[str, str] | None]:
    """`limit` (default 100, at most 500) and `cursor` (a `nextCursor` of GET /limits: `<kind>:<name>`,
    the page starts after that limit)."""
    limit = integer("limit", DEFAULT_LIMIT_PAGE, 1, MAX_LIMIT_PAGE)
    cursor = request.args.get("cursor")
    if not cursor:
        return int(limit or DEFAULT_LIMIT_PAGE), None
    kind, _, name = cursor.partition(":")
    if kind not in LIMIT_KINDS or not 0 < len(name) <= _MAX_TEXT:
        raise _invalid("cursor", "is not a cursor returned by this API")
    return int(limit or DEFAULT_LIMIT_PAGE), (name, kind)


def limit_cursor(after: tuple[str, str]) -> str:
    name, kind = after
    return f"{kind}:{name}"
