"""A `wait` node and its signal, through the core functions, on MySQL and on SQLite (the `orchestrator
dev` profile's database): the node waits without a slot and a signal completes it; a signal sent first
is stored and consumed when the node is reached; a timeout completes or fails it once."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, select

from orchestrator import catalog, lifecycle, recovery, scheduling, signals, storable, views
from orchestrator.db import make_engine
from orchestrator.errors import ValidationError
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.migrate import upgrade
from orchestrator.models import SignalRow
from orchestrator.nodes import wait
from tests.acceptance.helpers import nodes, run_here
from tests.support.services import wait_for
from workers.runtime import Ending, run


def approval(name: str, **wait_options: Any) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1.0.0",
        "nodes": [
            {"id": "approve", "type": "wait", "signal": "approval", **wait_options},
            {"id": "after", "type": "task", "executor": "noop", "dependsOn": ["approve"]},
        ],
    }


@pytest.fixture(params=["mysql", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    if request.param == "mysql":
        yield request.getfixturevalue("db")
        return
    url = f"sqlite:///{tmp_path / 'orchestrator.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _waiting(engine: Engine, definition: dict[str, Any]) -> str:
    """An instance of `definition` whose wait node has been claimed and now waits."""
    catalog.save_definition(engine, definition)
    instance_id = create_instance(engine, InstanceRequest(definition["name"], start=False)).instance_id
    (d,) = scheduling.start(engine, instance_id).dispatches
    held = scheduling.claim(engine, instance_id, "approve", d.attempt, "w", d.facts())
    assert held is not None
    attempt = run(engine, held, 30.0)
    assert attempt.ending is Ending.HANDED_OFF and attempt.outcome.dispatches == []
    return instance_id


def test_a_signal_completes_the_waiting_node_once(engine: Engine) -> None:
    instance_id = _waiting(engine, approval("wait-after"))
    row = nodes(engine, instance_id)["approve"]
    assert (row.status, row.heartbeat_at, row.wake_at) == ("waiting", None, None)
    status = views.status(engine, instance_id)
    assert status["waitingNodes"] == ["approve"]
    assert status["waitingFor"] == {"approve": {"signal": "approval", "until": None}}

    sent = signals.send(engine, instance_id, "approval", {"ok": True})

    assert (sent.delivered, sent.node_id) == (True, "approve")
    assert [d.node_id for d in sent.outcome.dispatches] == ["after"]
    assert nodes(engine, instance_id)["approve"].output == {"ok": True}
    with pytest.raises(signals.NodeDone):
        signals.send(engine, instance_id, "approval", {"ok": False})


def test_a_signal_sent_first_is_stored_and_consumed_when_the_node_is_reached(engine: Engine) -> None:
    catalog.save_definition(engine, approval("wait-before"))
    instance_id = create_instance(engine, InstanceRequest("wait-before", start=False)).instance_id

    assert signals.send(engine, instance_id, "approval", [1, 2]).delivered is False
    with pytest.raises(signals.SignalAlreadyStored):
        signals.send(engine, instance_id, "approval", [3])

    assert run_here(engine, instance_id).finished.status == "completed"
    assert nodes(engine, instance_id)["approve"].output == [1, 2]
    with engine.connect() as conn:
        stored = conn.execute(select(SignalRow.node_id, SignalRow.attempt, SignalRow.consumed_at)).one()
    assert stored.node_id == "approve" and stored.attempt == 1 and stored.consumed_at is not None


def _timed_out(engine: Engine, instance_id: str) -> None:
    wait_for(lambda: wait.time_out(engine, 0.0), 10, "the wait to time out")
    assert wait.time_out(engine, 0.0) == []  # once


def test_a_timeout_completes_with_on_timeout_or_fails_with_timeout(engine: Engine) -> None:
    given = _waiting(engine, approval("wait-given", timeout=50, onTimeout={"output": {"auto": 1}}))
    assert views.status(engine, given)["waitingFor"]["approve"]["until"] is not None
    _timed_out(engine, given)
    assert nodes(engine, given)["approve"].output == {"auto": 1}

    failing = _waiting(engine, approval("wait-fails", timeout=50))
    _timed_out(engine, failing)
    row = nodes(engine, failing)["approve"]
    assert (row.status, row.error["code"]) == ("failed", "TIMEOUT")
    assert views.status(engine, failing)["status"] == "failed"


def test_a_paused_instance_takes_a_signal_and_its_resume_sends_the_successor(engine: Engine) -> None:
    instance_id = _waiting(engine, approval("wait-paused"))
    lifecycle.pause(engine, instance_id)
    assert nodes(engine, instance_id)["approve"].status == "waiting"  # a pause leaves it waiting

    sent = signals.send(engine, instance_id, "approval", "yes")

    assert sent.delivered and sent.outcome.dispatches == []
    assert nodes(engine, instance_id)["after"].status == "queued"
    assert [d.node_id for d in lifecycle.resume(engine, instance_id).dispatches] == ["after"]


def test_a_timed_out_wait_with_retries_waits_again_in_its_next_attempt(engine: Engine) -> None:
    instance_id = _waiting(engine, approval("wait-retried", timeout=50, retries=1))
    retried = wait_for(lambda: wait.time_out(engine, 0.0), 10, "the wait to time out")
    (d,) = retried[0].dispatches
    assert (d.node_id, d.attempt) == ("approve", 2)

    held = scheduling.claim(engine, instance_id, "approve", d.attempt, "w", d.facts())
    assert held is not None and run(engine, held, 30.0).ending is Ending.HANDED_OFF
    row = nodes(engine, instance_id)["approve"]
    assert (row.status, row.attempt, row.failures) == ("waiting", 2, 1)
    assert signals.send(engine, instance_id, "approval", 1).delivered


def test_a_signal_racing_the_nodes_start_is_never_missed(engine: Engine) -> None:
    catalog.save_definition(engine, approval("wait-race"))
    for _ in range(10):
        instance_id = create_instance(engine, InstanceRequest("wait-race", start=False)).instance_id
        (d,) = scheduling.start(engine, instance_id).dispatches
        held = scheduling.claim(engine, instance_id, "approve", d.attempt, "w", d.facts())
        assert held is not None
        with ThreadPoolExecutor(2) as pool:
            started = pool.submit(run, engine, held, 30.0)
            sent = pool.submit(signals.send, engine, instance_id, "approval", "go")
            started.result(), sent.result()
        assert nodes(engine, instance_id)["approve"].output == "go"
        with engine.connect() as conn:
            consumed = conn.execute(
                select(SignalRow.consumed_at).where(SignalRow.instance_id == instance_id)
            ).scalars()
            assert [at is not None for at in consumed] == [True]


def test_the_sweep_hands_back_a_claimed_wait_that_never_waited_not_a_waiting_one(engine: Engine) -> None:
    waits = _waiting(engine, approval("wait-lost"))
    lost = create_instance(engine, InstanceRequest("wait-lost", start=False)).instance_id
    (d,) = scheduling.start(engine, lost).dispatches
    assert scheduling.claim(engine, lost, "approve", d.attempt, "died", d.facts()) is not None

    swept = wait_for(lambda: recovery.sweep(engine, heartbeat_timeout=0.001).handed_back, 10, "a hand-back")
    assert swept == 1
    assert (nodes(engine, lost)["approve"].status, nodes(engine, lost)["approve"].attempt) == ("queued", 2)
    assert nodes(engine, waits)["approve"].status == "waiting"


@pytest.mark.parametrize("reached", [False, True])
def test_a_body_the_store_refuses_is_a_validation_error_stored_or_delivered(db, monkeypatch, reached) -> None:
    """The check before the write misses (as on MySQL for a number past a double's range); the
    store's own refusal is then the request's 422 naming the body, never a 500."""
    if reached:
        instance_id = _waiting(db, approval("wait-refused-delivered"))
    else:
        catalog.save_definition(db, approval("wait-refused-stored"))
        instance_id = create_instance(db, InstanceRequest("wait-refused-stored", start=False)).instance_id
    too_deep: Any = 1
    for _ in range(storable.max_depth(db) + 1):
        too_deep = [too_deep]
    monkeypatch.setattr(storable, "max_depth", lambda engine: 10_000)

    with pytest.raises(ValidationError) as refused:
        signals.send(db, instance_id, "approval", too_deep)

    assert [p.field for p in refused.value.problems] == ["body"]
    assert "the store refused it" in refused.value.message
    assert signals.send(db, instance_id, "approval", {"ok": True}).node_id == "approve"  # nothing kept
