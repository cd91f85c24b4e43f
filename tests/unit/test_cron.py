"""Fire times of a cron expression in a zone (`orchestrator/cron.py`): on the zone's wall clock across
DST changes, never twice at one instant, seconds as an optional first field; what a bad expression
or zone is called."""

from __future__ import annotations

from datetime import datetime
from itertools import islice

from orchestrator import cron


def test_a_daily_time_follows_the_zones_wall_clock_in_winter_and_summer():
    assert cron.next_after("0 9 * * *", "Europe/Paris", datetime(2026, 1, 10)) == datetime(2026, 1, 10, 8)
    assert cron.next_after("0 9 * * *", "Europe/Paris", datetime(2026, 7, 10)) == datetime(2026, 7, 10, 7)


def test_across_the_spring_change_an_hourly_time_that_does_not_exist_is_not_invented():
    # New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT, so 02:30 never happens
    times = list(islice(cron.fire_times("30 * * * *", "America/New_York", datetime(2026, 3, 8, 5)), 3))
    assert times == [datetime(2026, 3, 8, 5, 30), datetime(2026, 3, 8, 6, 30), datetime(2026, 3, 8, 7, 30)]


def test_across_the_autumn_change_fire_times_stay_strictly_increasing():
    after = datetime(2026, 10, 25)  # Paris leaves summer time at 03:00 local, 01:00 UTC
    times = list(islice(cron.fire_times("*/30 * * * *", "Europe/Paris", after), 8))
    assert all(a < b for a, b in zip(times, times[1:], strict=False)), times


def test_seconds_first_and_the_latest_time_at_or_before():
    assert cron.next_after("*/2 * * * * *", "UTC", datetime(2026, 1, 1, 0, 0, 2)) == datetime(
        2026, 1, 1, 0, 0, 4
    )
    assert cron.last_at_or_before("*/2 * * * * *", "UTC", datetime(2026, 1, 1, 0, 0, 3, 500)) == datetime(
        2026, 1, 1, 0, 0, 2
    )


def test_problems_name_the_field_and_code():
    def named(expression: str, zone: str = "UTC") -> list[tuple[str, str]]:
        return [(p.field, p.code) for p in cron.problems(expression, zone)]

    assert named("*/2 * * * * *") == [] and named("0 9 * * MON-FRI", "Asia/Tokyo") == []
    assert named("61 * * * *") == [("cron", "INVALID_CRON")]
    assert named("* * *") == [("cron", "INVALID_CRON")]
    assert named("* * */20 * 1L") == [("cron", "INVALID_CRON")]  # never fires
    assert named("0 9 * * *", "Mars/Olympus") == [("timezone", "INVALID_TIMEZONE")]
    assert named("0 9 * * *", "../../etc/passwd") == [("timezone", "INVALID_TIMEZONE")]
