"""The sleep timer and the delayed start, through the core functions, on MySQL and on SQLite (the
`orchestrator dev` profile): the sweep fires a sleep once its time has come, exactly once however
often it runs, and starts a delayed instance at its startAt, not before."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from orchestrator import catalog, lifecycle, recovery, scheduling
from orchestrator.db import make_engine
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.migrate import upgrade
from orchestrator.models import InstanceRow, utcnow
from orchestrator.nodes import sleep
from orchestrator.outcomes import Outcome
from tests.acceptance.helpers import log_messages, nodes, run_here
from tests.support.services import wait_for

# the sleep's duration and the delayed start's delay: long enough for the few queries a test makes
# before them (which check that an early wake-up or start does nothing) on a loaded machine
EARLY_MS = 1000
NAP = {
    "name": "nap",
    "version": "1.0.0",
    "nodes": [
        {"id": "nap", "type": "sleep", "duration": EARLY_MS},
        {"id": "after", "type": "task", "executor": "noop", "dependsOn": ["nap"]},
    ],
}
ONE = {"name": "one", "version": "1.0.0", "nodes": [{"id": "only", "type": "task", "executor": "noop"}]}


@pytest.fixture(params=["mysql", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "mysql":
        yield request.getfixturevalue("db")
        return
    url = f"sqlite:///{tmp_path / 'orchestrator.sqlite3'}"
    upgrade(url)
    catalog.clear_cache()
    sqlite = make_engine(url)
    yield sqlite
    sqlite.dispose()
    catalog.clear_cache()


def _sweep(engine: Engine) -> recovery.SweepReport:
    report = recovery.sweep(engine, heartbeat_timeout=30.0)
    assert not report.failed
    return report


def test_the_sweep_fires_a_sleep_once_when_its_time_has_come(engine: Engine) -> None:
    catalog.save_definition(engine, NAP)
    instance_id = create_instance(engine, InstanceRequest("nap")).instance_id
    asleep = run_here(engine, instance_id)
    row = nodes(engine, instance_id)["nap"]
    assert (row.status, row.heartbeat_at) == ("waiting", None) and row.wake_at is not None
    # a short sleep also has its prompt wake-up message, which fires only once its time has come
    assert [(w.node_id, w.attempt) for w in asleep.wakeups] == [("nap", row.attempt)]
    assert sleep.wake(engine, instance_id, "nap", row.attempt) == Outcome()

    fired = wait_for(lambda: _sweep(engine).dispatches, 10, "the sweep to fire the sleep", interval=0.05)

    assert utcnow() >= row.wake_at
    assert [d.node_id for d in fired] == ["after"]
    assert nodes(engine, instance_id)["nap"].output == {"sleptUntil": row.wake_at.isoformat() + "Z"}
    # fired once: neither another sweep nor the wake-up message finds it again
    assert _sweep(engine).dispatches == []
    assert sleep.wake(engine, instance_id, "nap", row.attempt) == Outcome()
    assert run_here(engine, instance_id, first=Outcome(fired)).finished.status == "completed"
    assert log_messages(engine, instance_id, "after").count("node completed") == 1


def test_a_delayed_instance_starts_at_its_start_at_and_a_manual_start_overrides_it(engine: Engine) -> None:
    catalog.save_definition(engine, ONE)
    start_at = utcnow() + timedelta(milliseconds=EARLY_MS)
    delayed = create_instance(engine, InstanceRequest("one", start_at=start_at)).instance_id
    manual = create_instance(
        engine, InstanceRequest("one", start_at=start_at + timedelta(days=1))
    ).instance_id
    assert scheduling.start(engine, delayed) == Outcome()  # an early `schedule` starts nothing

    report = wait_for(lambda: _sweep(engine).dispatches, 10, "the sweep to start it", interval=0.05)

    with engine.connect() as conn:
        started_at = conn.execute(
            select(InstanceRow.started_at).where(InstanceRow.id == delayed)
        ).scalar_one()
    assert started_at >= start_at
    assert [(d.instance_id, d.node_id) for d in report] == [(delayed, "only")]
    assert [d.instance_id for d in lifecycle.start(engine, manual).dispatches] == [manual]


def test_a_lost_start_asked_for_before_the_start_at_is_started_now(engine: Engine) -> None:
    """A retry of an instance whose startAt is still to come (it was started by hand) asks for its
    start now; should its process die before the start, the sweep starts it now, not at startAt."""
    catalog.save_definition(engine, ONE)
    tomorrow = utcnow() + timedelta(days=1)
    later = create_instance(engine, InstanceRequest("one", start_at=tomorrow)).instance_id
    retried = create_instance(engine, InstanceRequest("one", start_at=tomorrow)).instance_id
    with engine.begin() as conn:  # as the retry's reset leaves it: a start asked for a minute ago
        conn.execute(
            update(InstanceRow)
            .where(InstanceRow.id == retried)
            .values(start_requested_at=utcnow() - timedelta(minutes=1))
        )

    report = _sweep(engine)

    assert [(d.instance_id, d.node_id) for d in report.dispatches] == [(retried, "only")]
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(InstanceRow.id, InstanceRow.status)).all())
    assert (statuses[retried], statuses[later]) == ("running", "pending")


def test_the_sleep_of_a_cancelled_instance_never_fires(engine: Engine) -> None:
    catalog.save_definition(engine, NAP)
    instance_id = create_instance(engine, InstanceRequest("nap")).instance_id
    run_here(engine, instance_id)
    wake_at = nodes(engine, instance_id)["nap"].wake_at
    lifecycle.cancel(engine, instance_id)
    wait_for(lambda: utcnow() > wake_at, 10, "the wake-up time to pass")

    assert sleep.fire_due(engine) == []
    assert {n: r.status for n, r in nodes(engine, instance_id).items()} == {
        "nap": "cancelled",
        "after": "cancelled",
    }
