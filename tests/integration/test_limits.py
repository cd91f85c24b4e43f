"""Limits against MySQL, in one process: the slot accounting of concurrency limits (executor, node,
key), the order waiting work is let through, the sweep's pass for a lost release, a rate's tokens,
and what `waitingFor` and `/limits` say (orchestrator/admission.py, key_limits.py)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from orchestrator import (
    admission,
    catalog,
    key_limits,
    lifecycle,
    limit_report,
    limits,
    recovery,
    scheduling,
    views,
)
from orchestrator.errors import StartTooEarly
from orchestrator.executors import executor
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.models import InstanceRow, NodeRow, utcnow
from orchestrator.outcomes import Dispatch
from workers.runtime import run_attempt

WORKER = "limits-test"


@executor("tests.limits.two", concurrency=2)
def _two(ctx: Any, config: dict[str, Any]) -> dict[str, Any]:
    return {"node": ctx.node_id}


def _name() -> str:
    return f"limits-{uuid.uuid4().hex[:8]}"


def _start(engine: Engine, definition: dict[str, Any], **request: Any) -> tuple[str, list[Dispatch]]:
    catalog.save_definition(engine, definition)
    created = create_instance(engine, InstanceRequest(workflow=definition["name"], **request))
    return created.instance_id, scheduling.start(engine, created.instance_id).dispatches


def _fan(name: str, width: int, executor_name: str = "tests.limits.two", **node: Any) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1.0.0",
        "nodes": [{"id": f"n{i}", "executor": executor_name, **node} for i in range(width)],
    }


def _finish(engine: Engine, d: Dispatch) -> None:
    held = scheduling.claim(engine, d.instance_id, d.node_id, d.attempt, WORKER, d.facts())
    assert held is not None, f"the claim of {d.node_id} was refused"
    run_attempt(engine, held, 30.0)


def _waiting_for(engine: Engine, instance_id: str) -> dict[str, Any]:
    return views.status(engine, instance_id)["waitingFor"]


def _limit(engine: Engine, name: str, kind: str = "concurrency") -> dict[str, Any]:
    return next(e for e in limit_report.report(engine) if e["name"] == name and e["kind"] == kind)


def test_an_executor_limit_sends_only_as_many_as_it_has_slots_and_a_freed_slot_sends_the_next(db):
    instance_id, dispatches = _start(db, _fan(_name(), 5))
    assert all(d.limits for d in dispatches)
    sent = admission.admit(db, dispatches)
    assert [d.node_id for d in sent] == ["n0", "n1"]
    waiting = _waiting_for(db, instance_id)
    assert waiting["n2"] == {"limit": "executor:tests.limits.two", "kind": "concurrency"}
    assert waiting["n0"] == "worker"  # sent: it waits for a worker, not for the limit
    entry = _limit(db, "executor:tests.limits.two")
    assert (entry["limit"], entry["inUse"], entry["waiting"]) == (2, 2, 3)
    # a copy of a held node's message (it was never sent) is refused at claim
    held_back = next(d for d in dispatches if d.node_id == "n2")
    assert scheduling.claim(db, instance_id, "n2", held_back.attempt, WORKER, held_back.facts()) is None
    # sending the same messages again admits no more
    assert [d.node_id for d in admission.admit(db, dispatches)] == ["n0", "n1"]
    _finish(db, sent[0])
    released = admission.release(db, sent[0].limits)
    assert [d.node_id for d in released] == ["n2"]  # FIFO: queued first (id order at one time)
    for d in [sent[1], *released]:
        _finish(db, d)
    rest = admission.release(db, sent[0].limits)
    assert [d.node_id for d in rest] == ["n3", "n4"]
    for d in rest:
        _finish(db, d)
    assert views.status(db, instance_id)["status"] == "completed"
    assert _limit(db, "executor:tests.limits.two")["inUse"] == 0


def test_waiting_nodes_are_let_through_by_priority_then_in_order(db):
    definition = _fan(_name(), 1, "noop", concurrency=1)
    first, (running,) = _start(db, definition, priority="low")
    assert [d.node_id for d in admission.admit(db, [running])] == ["n0"]
    later = []
    for priority in ("low", "normal", "high", "normal"):
        instance_id, dispatches = _start(db, definition, priority=priority)
        assert admission.admit(db, dispatches) == []
        later.append(instance_id)
    gate = running.limits[0]
    assert gate.name == f"node:{definition['name']}/n0"
    order = []
    current = running
    for _ in later:
        _finish(db, current)
        (current,) = admission.release(db, [gate])
        order.append(current.instance_id)
    _finish(db, current)
    assert order == [later[2], later[1], later[3], later[0]]


def test_a_handed_back_node_frees_its_slot_and_a_late_finisher_frees_nothing(db):
    instance_id, dispatches = _start(db, _fan(_name(), 3))
    first, second = admission.admit(db, dispatches)
    held = scheduling.claim(db, instance_id, first.node_id, first.attempt, WORKER, first.facts())
    assert held is not None
    with db.connect() as conn:
        row = conn.execute(
            select(
                NodeRow.id,
                NodeRow.instance_id,
                NodeRow.node_id,
                NodeRow.attempt,
                NodeRow.handbacks,
                NodeRow.worker_id,
                NodeRow.type,
            ).where(NodeRow.id == first.row_id)
        ).one()
    outcome = recovery.hand_back(db, recovery.RunningNode._make(row), reason="worker gone")
    assert outcome is not None
    # the next attempt waits like any other node: the one waiting before it goes first
    sent = admission.admit(db, outcome.dispatches)
    assert [(d.node_id, d.attempt) for d in sent] == [("n2", 1)]
    assert _limit(db, "executor:tests.limits.two")["inUse"] == 2
    # the old attempt's result is fenced off, and its end frees no slot
    assert run_attempt(db, held, 30.0).dispatches == []  # fenced: it records nothing, sends nothing
    assert _limit(db, "executor:tests.limits.two")["inUse"] == 2
    assert admission.release(db, first.limits) == []


def test_the_sweep_sends_a_waiting_node_whose_release_was_lost(db):
    instance_id, dispatches = _start(db, _fan(_name(), 3))
    first, _second = admission.admit(db, dispatches)
    _finish(db, first)  # and no release: the process died after the commit
    assert _waiting_for(db, instance_id)["n2"]["limit"] == "executor:tests.limits.two"
    report = recovery.sweep(db, heartbeat_timeout=60)
    assert [(d.node_id, d.attempt) for d in report.dispatches if d.instance_id == instance_id] == [("n2", 1)]
    assert "n2" not in _waiting_for(db, instance_id) or _waiting_for(db, instance_id)["n2"] == "worker"
    # a second sweep sends nothing more: the slot is taken
    again = recovery.sweep(db, heartbeat_timeout=60)
    assert [d for d in again.dispatches if d.instance_id == instance_id] == []


def test_a_rate_spreads_the_starts_by_a_countdown_without_holding_them(db):
    name = _name()
    definition = _fan(name, 1, "noop", rate="10/s")
    started = [_start(db, definition) for _ in range(5)]
    dispatches = [d for _, found in started for d in found]
    before = time.time()
    sent = admission.admit(db, dispatches)
    assert len(sent) == 5
    countdowns = sorted(d.countdown for d in sent)
    elapsed = time.time() - before
    assert countdowns[0] <= elapsed + 0.01
    for earlier, later in zip(countdowns, countdowns[1:], strict=False):
        assert abs((later - earlier) - 0.1) < 0.02, countdowns
    last = max(sent, key=lambda d: d.countdown)
    rated = _waiting_for(db, last.instance_id)["n0"]
    assert rated["limit"] == f"node:{name}/n0" and rated["kind"] == "rate", rated
    assert _limit(db, f"node:{name}/n0", "rate")["waiting"] >= 3
    # every node is admitted: a claim at its time runs it
    assert scheduling.claim(db, last.instance_id, "n0", last.attempt, WORKER, last.facts()) is not None


def test_a_claim_too_early_for_its_rate_is_rolled_back_and_a_refused_copy_takes_no_start(db):
    """The bucket of starts (a burst of one) is checked in the claim's transaction: a claim too early
    for it leaves the node queued (raising StartTooEarly with the wait), and a copy whose claim is
    refused (a stale attempt) spends no start, so the recorded starts are the ones the rate allows."""
    name = _name()
    definition = _fan(name, 1, "noop", rate="1/m")
    first, burst, second = (admission.admit(db, _start(db, definition)[1])[0] for _ in range(3))
    spec = catalog.load_definition(db, first.definition_id).node("n0")
    gates = limits.node_gates(name, "n0", spec.executor, spec.limits)

    def check(conn: Any, now: Any) -> float:
        return admission.start_wait(conn, gates, now)

    stale = scheduling.claim(db, first.instance_id, "n0", first.attempt + 1, WORKER, first.facts(), check)
    assert stale is None
    assert scheduling.claim(db, first.instance_id, "n0", first.attempt, WORKER, first.facts(), check)
    assert scheduling.claim(db, burst.instance_id, "n0", burst.attempt, WORKER, burst.facts(), check)
    with pytest.raises(StartTooEarly) as early:
        scheduling.claim(db, second.instance_id, "n0", second.attempt, WORKER, second.facts(), check)
    assert 29 < early.value.wait <= 60  # its turn: a minute after the first start, less half the slack
    with db.connect() as conn:
        row = conn.execute(
            select(NodeRow.status, NodeRow.started_at).where(NodeRow.instance_id == second.instance_id)
        ).one()
    assert (row.status, row.started_at) == ("queued", None)


def test_a_concurrency_key_keeps_instances_with_the_same_key_pending_in_order(db):
    name = _name()
    definition = {
        "name": name,
        "version": "1.0.0",
        "concurrency": {"key": "${input.customer}", "limit": 1},
        "nodes": [{"id": "a", "executor": "noop"}],
    }
    a1, _ = _start(db, definition, input={"customer": "c1"})
    a2, held = _start(db, definition, input={"customer": "c1"})
    b1, _ = _start(db, definition, input={"customer": "c2"})
    a3, _ = _start(db, definition, input={"customer": "c1"}, priority="high")
    assert held == []
    statuses = {i: views.instance(db, i)["status"] for i in (a1, a2, b1, a3)}
    assert statuses == {a1: "running", a2: "pending", b1: "running", a3: "pending"}
    assert views.instance(db, a2)["waitingFor"] == {"limit": f"key:{name}:c1", "kind": "concurrency"}
    assert views.instance(db, a1)["waitingFor"] is None
    # a start out of turn (the sweep, a copy of its message) waits for the one ahead of it
    finished = lifecycle.cancel(db, a1).finished
    assert finished is not None and finished.concurrency_key == f"key:{name}:c1"
    assert scheduling.start(db, a2).dispatches == []
    nexts = key_limits.next_for_key(db, finished.concurrency_key)
    assert [s.instance_id for s in nexts] == [a3]  # higher priority first
    assert scheduling.start(db, a3).dispatches
    entry = _limit(db, f"key:{name}:c1")
    assert (entry["limit"], entry["inUse"], entry["waiting"]) == (1, 1, 1)


def test_orch_limits_overrides_a_declared_limit_field_by_field(monkeypatch):
    monkeypatch.setenv("ORCH_LIMITS", '{"tests.limits.two": {"concurrency": 5, "rate": "3/s"}}')
    limits.set_overrides(None)
    try:
        found = limits.of_executor("tests.limits.two")
        assert found.concurrency == 5 and found.rate is not None and found.rate.interval == 1 / 3
        monkeypatch.setenv("ORCH_LIMITS", '{"tests.limits.two": {"rate": "1/m"}}')
        limits.set_overrides(None)
        assert limits.of_executor("tests.limits.two").concurrency == 2
        monkeypatch.setenv("ORCH_LIMITS", '{"tests.limits.two": {"concurrency": null}}')
        limits.set_overrides(None)
        assert limits.of_executor("tests.limits.two").concurrency is None
    finally:
        monkeypatch.delenv("ORCH_LIMITS")
        limits.set_overrides(None)


def test_a_limit_on_a_maps_item_body_holds_its_items_apart_from_the_map_node(db):
    name = _name()
    definition = {
        "name": name,
        "version": "1.0.0",
        "nodes": [
            {"id": "list", "executor": "noop", "config": {"items": [1, 2, 3, 4]}},
            {
                "id": "m",
                "type": "map",
                "dependsOn": ["list"],
                "over": "${nodes.list.output.items}",
                "node": {"executor": "noop", "concurrency": 2},
            },
        ],
    }
    instance_id, (first,) = _start(db, definition)
    pending = [first]
    items: list[Dispatch] = []
    while pending:  # run what is not an item, until the map has sent its items
        d = pending.pop()
        if "[" in d.node_id:
            items.append(d)
            continue
        held = scheduling.claim(db, d.instance_id, d.node_id, d.attempt, WORKER, d.facts())
        assert held is not None
        pending += run_attempt(db, held, 30.0).dispatches
    assert len(items) == 4 and all(g.name == f"node:{name}/m[]" for d in items for g in d.limits)
    sent = admission.admit(db, items)
    assert len(sent) == 2
    assert _limit(db, f"node:{name}/m[]")["waiting"] == 2  # the map node itself holds no slot of it
    for d in sent:
        _finish(db, d)
    rest = admission.release(db, sent[0].limits)
    assert len(rest) == 2
    for d in rest:
        _finish(db, d)
    assert views.status(db, instance_id)["status"] == "completed"


def _keyed(name: str, limit: int = 1) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1.0.0",
        "concurrency": {"key": "${input.customer}", "limit": limit},
        "nodes": [{"id": "a", "executor": "noop"}],
    }


def _asked_for_long_ago(engine: Engine, *instance_ids: str) -> None:
    long_ago = utcnow() - timedelta(hours=1)
    with engine.begin() as conn:
        conn.execute(
            update(InstanceRow).where(InstanceRow.id.in_(instance_ids)).values(start_requested_at=long_ago)
        )


def test_instances_held_back_by_their_key_do_not_keep_the_sweep_from_a_lost_start(db, monkeypatch):
    monkeypatch.setattr(recovery, "BATCH", 3)
    keyed = _keyed(_name())
    first, _ = _start(db, keyed, input={"customer": "c1"})
    held = [_start(db, keyed, input={"customer": "c1"})[0] for _ in range(5)]
    plain = _name()
    catalog.save_definition(
        db, {"name": plain, "version": "1.0.0", "nodes": [{"id": "a", "executor": "noop"}]}
    )
    lost = create_instance(db, InstanceRequest(workflow=plain)).instance_id  # its `schedule` never sent
    _asked_for_long_ago(db, first, *held, lost)
    assert views.instance(db, lost)["status"] == "pending"
    recovery.sweep(db, heartbeat_timeout=60.0)
    assert views.instance(db, lost)["status"] == "running"
    assert [views.instance(db, i)["status"] for i in held] == ["pending"] * 5


def test_the_sweep_starts_the_next_instance_of_a_key_whose_release_was_lost(db):
    keyed = _keyed(_name())
    first, _ = _start(db, keyed, input={"customer": "c1"})
    second, _ = _start(db, keyed, input={"customer": "c1"})
    lost = create_instance(db, InstanceRequest(workflow=keyed["name"], input={"customer": "c2"})).instance_id
    _asked_for_long_ago(db, first, second, lost)
    lifecycle.cancel(db, first)  # and the end's `schedule` of the next is never sent
    assert views.instance(db, second)["status"] == "pending"
    recovery.sweep(db, heartbeat_timeout=60.0)
    assert views.instance(db, second)["status"] == "running"
    assert views.instance(db, lost)["status"] == "running"


@executor("tests.limits.shared", concurrency=2)
def _shared(ctx: Any, config: dict[str, Any]) -> dict[str, Any]:
    return {}


def test_nodes_parked_on_another_full_limit_do_not_keep_a_limits_free_slots_idle(db, monkeypatch):
    monkeypatch.setattr(admission, "WINDOW", 2)
    # one slot of the executor's two taken by a node whose own limit (1) is then full
    own = _fan(_name(), 1, "tests.limits.shared", concurrency=1)
    first, sent = _start(db, own)
    started = admission.admit(db, sent)
    assert [d.instance_id for d in started] == [first]
    parked = []
    for _ in range(2):  # the executor's oldest waiting nodes: parked on their node's full limit
        instance_id, sent = _start(db, own)
        assert admission.admit(db, sent) == []
        parked.append(instance_id)
    assert {_waiting_for(db, i)["n0"]["limit"] for i in parked} == {f"node:{own['name']}/n0"}
    other, sent = _start(db, _fan(_name(), 1, "tests.limits.shared"))
    assert [d.instance_id for d in admission.admit(db, sent)] == [other]
    assert _waiting_for(db, other)["n0"] == "worker"
    # the parked nodes come back by their own limit's release, in order
    _finish(db, started[0])
    assert [d.instance_id for d in admission.release(db, started[0].limits)] == [parked[0]]


@executor("tests.limits.flaky", concurrency=1)
def _flaky(ctx: Any, config: dict[str, Any]) -> dict[str, Any]:
    if config.get("fail"):
        raise RuntimeError("fails, to be retried")
    return {}


def test_a_retry_in_its_delay_holds_no_slot_and_is_let_through_once_due(db):
    def flaky(**config: Any) -> dict[str, Any]:
        node = {"id": "a", "executor": "tests.limits.flaky", "config": config, "retries": 1}
        return {"name": _name(), "version": "1.0.0", "nodes": [{**node, "retryDelay": 3_600_000}]}

    failing, sent = _start(db, flaky(fail=True))
    first = admission.admit(db, sent)
    held = scheduling.claim(db, failing, "a", first[0].attempt, WORKER, first[0].facts())
    assert held is not None
    retry = run_attempt(db, held, 30.0).dispatches
    assert admission.admit(db, retry) == []  # not admitted while its delay runs
    assert _waiting_for(db, failing)["a"] == "retryDelay"
    other, sent = _start(db, flaky())
    admitted = admission.admit(db, sent)
    assert [d.instance_id for d in admitted] == [other]  # the free slot is not the retry's
    with db.begin() as conn:  # its delay is over
        conn.execute(update(NodeRow).where(NodeRow.id == retry[0].row_id).values(not_before=utcnow()))
    _finish(db, admitted[0])
    assert [d.instance_id for d in admission.release(db, admitted[0].limits)] == [failing]
