"""The firing of schedules (`orchestrator/schedule_firing.py`), one pass at a time with a clock the
test sets: `catchup` after an outage (simulated by a `next_fire_at` minutes in the past), `overlap`
against a previous run still open, and one instance per fire time when a pass is repeated or two
run at once. On MySQL, and once on SQLite (the `orchestrator dev` profile)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select, update

from orchestrator import catalog, schedule_firing, schedules
from orchestrator.db import make_engine
from orchestrator.migrate import upgrade
from orchestrator.models import InstanceRow, ScheduleRow, utcnow
from tests.api.helpers import GREETING

NOW = utcnow().replace(second=30, microsecond=0)  # half a minute past a minute boundary
MINUTE = NOW.replace(second=0)


def _schedule(engine: Engine, cron: str = "* * * * *", **fields: object) -> None:
    catalog.save_definition(engine, GREETING)
    body = {"name": "s", "workflow": "greeting", "cron": cron, "input": {"email": "a@b.c"}, **fields}
    schedules.create(engine, body)


def _outage(engine: Engine, since: datetime) -> None:
    """As if nothing had run since `since`: its fire time is still the next one to handle."""
    with engine.begin() as conn:
        conn.execute(update(ScheduleRow).values(next_fire_at=since))


def _fired(engine: Engine) -> list[tuple[str, str]]:
    """(scheduledFor tag, status) of every instance, by fire time."""
    with engine.connect() as conn:
        rows = conn.execute(select(InstanceRow.tags, InstanceRow.status)).all()
    return sorted((row.tags["scheduledFor"], row.status) for row in rows)


def _iso(value: datetime) -> str:
    return value.isoformat() + "Z"


@pytest.mark.parametrize(
    ("catchup", "expected"),
    [("last", [MINUTE]), ("all", [MINUTE - timedelta(minutes=m) for m in (3, 2, 1, 0)])],
)
def test_after_a_three_minute_outage_catchup_last_runs_once_and_all_runs_each(db, catchup, expected):
    _schedule(db, catchup=catchup, overlap="allow")
    _outage(db, MINUTE - timedelta(minutes=3))
    report = schedule_firing.fire_due(db, NOW)
    assert [when for when, _ in _fired(db)] == [_iso(t) for t in expected]
    assert report.fired == len(expected)
    assert schedules.get(db, "s").next_fire_at == MINUTE + timedelta(minutes=1)


def test_catchup_none_drops_a_fire_time_missed_in_an_outage(db):
    missed = MINUTE - timedelta(minutes=3)
    _schedule(db, cron=f"{missed.minute} {missed.hour} * * *", catchup="none")  # daily, 3 minutes ago
    _outage(db, missed)
    report = schedule_firing.fire_due(db, NOW)
    assert _fired(db) == [] and report.missed == 1
    assert schedules.get(db, "s").next_fire_at == missed + timedelta(days=1)


def test_a_repeated_pass_over_the_same_fire_time_creates_no_second_instance(db):
    _schedule(db)
    _outage(db, MINUTE)
    schedule_firing.fire_due(db, NOW)
    _outage(db, MINUTE)  # as if the pass had died before its compare-and-set
    again = schedule_firing.fire_due(db, NOW)
    assert _fired(db) == [(_iso(MINUTE), "pending")] and again.fired == 0


def test_two_passes_at_once_without_the_lock_start_each_fire_time_once(db):
    _schedule(db, catchup="all", overlap="allow")
    _outage(db, MINUTE - timedelta(minutes=3))
    barrier = threading.Barrier(2)

    def one_pass() -> schedule_firing.FireReport:
        barrier.wait()
        return schedule_firing.fire_due(db, NOW)

    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: one_pass(), range(2)))
    assert [when for when, _ in _fired(db)] == [_iso(MINUTE - timedelta(minutes=m)) for m in (3, 2, 1, 0)]
    assert sum(r.fired for r in reports) == 4 and sum(r.failed for r in reports) == 0
    assert schedules.get(db, "s").next_fire_at == MINUTE + timedelta(minutes=1)


@pytest.mark.parametrize(
    ("overlap", "expected"),
    [
        ("skip", [(0, "pending")]),
        ("allow", [(0, "pending"), (1, "pending")]),
        ("cancelPrevious", [(0, "cancelled"), (1, "pending")]),
    ],
)
def test_overlap_with_the_previous_run_still_open(db, overlap, expected):
    _schedule(db, overlap=overlap)  # no worker: the first run stays pending, which counts as open
    _outage(db, MINUTE)
    schedule_firing.fire_due(db, NOW)
    schedule_firing.fire_due(db, NOW + timedelta(minutes=1))
    assert _fired(db) == [(_iso(MINUTE + timedelta(minutes=m)), status) for m, status in expected]
    assert schedules.get(db, "s").skipped_fires == (1 if overlap == "skip" else 0)


def test_paused_schedules_do_not_fire_and_resume_does_not_make_up(db):
    _schedule(db)
    schedules.set_paused(db, "s", True)
    assert schedule_firing.fire_due(db, NOW + timedelta(hours=1)).fired == 0
    resumed = schedules.set_paused(db, "s", False)
    assert resumed.next_fire_at is not None and resumed.next_fire_at > utcnow()
    assert _fired(db) == []


def test_firing_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'orchestrator.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        _schedule(engine, "*/2 * * * * *", catchup="last", overlap="cancelPrevious")
        _outage(engine, MINUTE)
        first = schedule_firing.fire_due(engine, NOW)
        second = schedule_firing.fire_due(engine, NOW + timedelta(seconds=2))
        assert (first.fired, second.fired) == (1, 1)
        assert _fired(engine) == [(_iso(NOW), "cancelled"), (_iso(NOW + timedelta(seconds=2)), "pending")]
        assert schedules.get(engine, "s").next_fire_at == NOW + timedelta(seconds=4)
    finally:
        engine.dispose()


def test_a_pass_past_its_budget_leaves_the_rest_due_for_the_next(db, monkeypatch):
    catalog.save_definition(db, GREETING)
    for name in ("s1", "s2"):
        body = {"name": name, "workflow": "greeting", "cron": "* * * * *", "input": {"email": "a@b.c"}}
        schedules.create(db, body)
    _outage(db, MINUTE)
    monkeypatch.setattr(schedule_firing, "PASS_BUDGET_S", 0.0)
    assert schedule_firing.fire_due(db, NOW).fired == 1  # one schedule at least, then the budget
    assert schedule_firing.fire_due(db, NOW).fired == 1  # the other, still due
    assert schedule_firing.fire_due(db, NOW).fired == 0
    assert _fired(db) == [(_iso(MINUTE), "pending")] * 2


@pytest.mark.parametrize("change", ["pause", "patch", "delete"])
def test_a_pass_that_read_the_schedule_before_a_change_does_not_fire_the_old_fire_time(db, change):
    _schedule(db)
    _outage(db, MINUTE)
    read_by_the_pass = schedules.get(db, "s")
    if change == "pause":
        schedules.set_paused(db, "s", True)
    elif change == "patch":
        schedules.change(db, "s", {"cron": "0 4 * * *"})
    else:
        schedules.remove(db, "s")

    report = schedule_firing.FireReport()
    schedule_firing._fire(db, read_by_the_pass, NOW, report)

    assert _fired(db) == [] and report.fired == 0


def test_a_change_in_the_middle_of_a_catchup_counts_the_runs_created_before_it(db, monkeypatch):
    """A pause between two fire times of one pass stops the rest, and the runs already created are
    counted whole: fired, their starts and their lags (the metrics read all three)."""
    _schedule(db, catchup="all", overlap="allow")
    _outage(db, MINUTE - timedelta(minutes=3))
    create = schedule_firing.instances.create_instance

    def create_then_pause_after_the_second(engine, request):
        created = create(engine, request)
        if len(_fired(db)) == 2:
            schedules.set_paused(db, "s", True)
        return created

    monkeypatch.setattr(schedule_firing.instances, "create_instance", create_then_pause_after_the_second)
    report = schedule_firing.fire_due(db, NOW)

    assert [when for when, _ in _fired(db)] == [_iso(MINUTE - timedelta(minutes=m)) for m in (3, 2)]
    assert report.fired == 2 and len(report.outcomes) == 2
    assert [catchup for catchup, _ in report.lags] == ["all", "all"]
