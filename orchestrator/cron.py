"""Cron expressions and time zones: parsing, and the fire times of a schedule in UTC.

Expressions are read by `cronsim` (Debian cron's semantics, plus an optional leading seconds field:
`*/2 * * * * *` fires every two seconds). Fire times are computed on the wall clock of the schedule's
zone (`zoneinfo`) and only then converted to UTC, so `0 9 * * *` in Europe/Paris fires at 09:00 Paris
time in winter and in summer; across a DST change cronsim follows Debian cron (a time skipped by the
spring change fires right after it, a time repeated in autumn fires once). No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim

from orchestrator.errors import Problem


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def zone(name: str) -> ZoneInfo:
    """The zone `name` (an IANA name such as `Europe/Paris`, or `UTC`); raises ValueError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Paris, or UTC)") from None


def problems(expression: str, timezone: str) -> list[Problem]:
    """What is wrong with a schedule's `cron` and `timezone` (empty when both are usable)."""
    found: list[Problem] = []
    try:
        zone(timezone)
    except ValueError as exc:
        found.append(Problem("timezone", str(exc), "INVALID_TIMEZONE"))
        timezone = "UTC"  # the expression is still checked
    if len(expression.split()) not in (5, 6):
        message = "must have 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first)"
        return [*found, Problem("cron", message, "INVALID_CRON")]
    try:
        first = next_after(expression, timezone, datetime.now(UTC))
    except Exception as exc:  # CronSimError, and whatever else an odd expression makes the parser raise
        return [*found, Problem("cron", f"not a valid cron expression: {exc}", "INVALID_CRON")]
    if first is None:
        found.append(Problem("cron", "never fires (no matching time in the next 50 years)", "INVALID_CRON"))
    return found


def fire_times(expression: str, timezone: str, after: datetime) -> Iterator[datetime]:
    """The fire times strictly after `after` (naive values are UTC), ascending, as naive UTC.

    Raises CronSimError for a malformed expression and ValueError for an unknown zone; ends when
    no match is found within 50 years of the previous one."""
    tz = zone(timezone)
    start = _aware(after).astimezone(tz)
    last: datetime | None = None
    for local in CronSim(expression, start):
        utc = local.astimezone(UTC).replace(tzinfo=None)
        # around a DST change two wall-clock times can map to the same instant: never repeat one
        if last is not None and utc <= last:
            continue
        last = utc
        yield utc


def next_after(expression: str, timezone: str, after: datetime) -> datetime | None:
    """The first fire time strictly after `after` (naive UTC), or None if there is none."""
    return next(iter(fire_times(expression, timezone, after)), None)


def last_at_or_before(expression: str, timezone: str, when: datetime) -> datetime | None:
    """The latest fire time at or before `when` (naive UTC), or None if there is none within 50 years."""
    start = (_aware(when) + timedelta(microseconds=1)).astimezone(zone(timezone))
    found = next(iter(CronSim(expression, start, reverse=True)), None)
    return None if found is None else found.astimezone(UTC).replace(tzinfo=None)
