"""Schedules fired by real `celery beat` processes through a real worker: with two beats each fire
time of a two-second cron starts exactly one instance (and is counted once in /metrics), and
`overlap: skip` starts nothing while the previous run is still running (held at a gate the test
opens), then fires again once it has ended."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from orchestrator import catalog, schedules
from orchestrator.models import InstanceRow
from tests.acceptance.helpers import effects
from tests.api.helpers import GREETING
from tests.deploy.test_metrics import scrape, value
from tests.support.executors import open_gate
from tests.support.services import wait_for

EVERY_2S = "*/2 * * * * *"
FAST_FIRING = {"ORCH_SCHEDULE_INTERVAL": "0.5"}
HELD = {
    "name": "held",
    "version": "1.0.0",
    "nodes": [{"id": "hold", "type": "task", "executor": "tests.gated", "config": {"gate": "hold"}}],
}


def _instances(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        statement = select(InstanceRow.id, InstanceRow.tags, InstanceRow.status).order_by(
            InstanceRow.created_at
        )
        return list(conn.execute(statement).all())


def _fire_time(row: Any) -> datetime:
    return datetime.fromisoformat(row.tags["scheduledFor"].removesuffix("Z"))


def test_two_beats_start_each_fire_time_exactly_once(processes, db, live_api):
    processes.worker("w1")
    processes.beat("beat1", **FAST_FIRING)
    processes.beat("beat2", **FAST_FIRING)
    catalog.save_definition(db, GREETING)
    # catchup all: a pass that comes late still starts every fire time, so the times have no gap
    body = {"workflow": "greeting", "cron": EVERY_2S, "input": {"email": "a@b.c"}, "catchup": "all"}
    schedules.create(db, {"name": "every-2s", "overlap": "allow", **body})
    wait_for(lambda: len(_instances(db)) >= 4, 60, "four fire times")
    schedules.set_paused(db, "every-2s", True)

    rows = _instances(db)
    per_fire_time = Counter(_fire_time(row) for row in rows)
    assert set(per_fire_time.values()) == {1}, per_fire_time
    times = sorted(per_fire_time)
    assert all(b - a == timedelta(seconds=2) for a, b in zip(times, times[1:], strict=False)), times
    assert {row.tags["scheduleName"] for row in rows} == {"every-2s"}
    wait_for(lambda: {row.status for row in _instances(db)} == {"completed"}, 60, "the runs to complete")

    def counted() -> bool:  # the passes' results reach /metrics through the worker's task_success
        samples = scrape(live_api)
        fired = value(samples, "orchestrator_schedule_fires_total", outcome="fired")
        lags = value(samples, "orchestrator_schedule_lag_seconds_count", catchup="all")
        return fired == lags == len(_instances(db))

    wait_for(counted, 20, "the fires in /metrics")


def test_overlap_skip_starts_nothing_while_the_previous_run_is_running(processes, db, redis_client):
    processes.worker("w1")
    processes.beat("beat", **FAST_FIRING)
    catalog.save_definition(db, HELD)
    schedules.create(db, {"name": "held", "workflow": "held", "cron": EVERY_2S, "overlap": "skip"})

    def first_at_gate() -> Any:
        rows = _instances(db)
        return rows[0] if rows and effects(db, rows[0].id, "gate") else None

    first = wait_for(first_at_gate, 60, "the first run to reach its gate")
    wait_for(lambda: schedules.get(db, "held").skipped_fires >= 2, 30, "two fire times skipped")
    assert [(row.id, row.status) for row in _instances(db)] == [(first.id, "running")]

    open_gate(redis_client, "hold")
    wait_for(lambda: len(_instances(db)) >= 2, 30, "a run once the first has ended")
    schedules.set_paused(db, "held", True)
    rows = _instances(db)
    assert rows[0].status == "completed" and _fire_time(rows[1]) > _fire_time(rows[0])
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(InstanceRow)).scalar() == len(rows)
