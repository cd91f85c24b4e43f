"""Flow control against MySQL, in one process: every path that frees a slot under a concurrency limit
reports the limits it freed (`Outcome.freed`, `Finished.freed`), so the release pass runs right after
its commit, not at the recovery sweep's pass; a rate books at most `HORIZON_TOKENS` ahead; a pause
hands back its admitted nodes' slots; a cancelled running attempt keeps its slot until it stops; and
a cancel waits for a start committing meanwhile rather than answering a conflict
(orchestrator/slot_holders.py, rate_horizon.py, lifecycle.py)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select, text, update

from orchestrator import (
    admission,
    catalog,
    completion,
    lifecycle,
    limit_report,
    limits,
    rate_horizon,
    recovery,
    scheduling,
    slot_holders,
    views,
)
from orchestrator.executors import executor
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.models import InstanceRow, NodeRow, utcnow
from orchestrator.outcomes import Dispatch, Outcome
from tests.support.services import wait_for
from workers.runtime import run_attempt

WORKER = "release-test"
GATE = "executor:tests.release.one"


@executor("tests.release.one", concurrency=1)
def _one(ctx: Any, config: dict[str, Any]) -> dict[str, Any]:
    if config.get("fail"):
        raise RuntimeError("fails for good")
    return {}


def _name() -> str:
    return f"release-{uuid.uuid4().hex[:8]}"


def _define(engine: Engine, nodes: list[dict[str, Any]], **extra: Any) -> str:
    name = _name()
    catalog.save_definition(engine, {"name": name, "version": "1.0.0", "nodes": nodes, **extra})
    return name


def _start(engine: Engine, workflow: str, **request: Any) -> tuple[str, list[Dispatch]]:
    created = create_instance(engine, InstanceRequest(workflow=workflow, **request))
    return created.instance_id, scheduling.start(engine, created.instance_id).dispatches


def _one_node(engine: Engine, **node: Any) -> str:
    return _define(engine, [{"id": "a", "executor": "tests.release.one", **node}])


def _holder_and_waiter(engine: Engine, workflow: str | None = None) -> tuple[Dispatch, str]:
    """One admitted node holding the limit's only slot, and another instance's node waiting for it."""
    workflow = workflow or _one_node(engine)
    _, sent = _start(engine, workflow)
    (holder,) = admission.admit(engine, sent)
    waiter, sent = _start(engine, workflow)
    assert admission.admit(engine, sent) == []
    assert views.status(engine, waiter)["waitingFor"]["a"] == {"limit": GATE, "kind": "concurrency"}
    return holder, waiter


def _released(engine: Engine, outcome: Outcome | None) -> list[str]:
    """What `follow_up` does with a committed Outcome's freed limits: the instances let through."""
    assert outcome is not None
    return [d.instance_id for d in admission.release(engine, outcome.all_freed())]


def _in_use(engine: Engine, name: str = GATE) -> int:
    entry = next(e for e in limit_report.report(engine) if e["name"] == name and e["kind"] == "concurrency")
    return int(entry["inUse"])


def test_a_cancel_of_an_instance_holding_a_slot_reports_it_and_its_release_sends_the_next(db):
    holder, waiter = _holder_and_waiter(db)
    outcome = lifecycle.cancel(db, holder.instance_id)
    assert [g.name for g in outcome.all_freed()] == [GATE]
    assert _released(db, outcome) == [waiter]


def test_a_workflow_timeout_reports_the_slots_of_the_nodes_it_cancels(db):
    holder, waiter = _holder_and_waiter(db)
    with db.begin() as conn:
        conn.execute(
            update(InstanceRow)
            .where(InstanceRow.id == holder.instance_id)
            .values(deadline_at=utcnow() - timedelta(seconds=1))
        )
    outcome = recovery.time_out(db, holder.instance_id)
    assert outcome.finished is not None and outcome.finished.status == "failed"
    assert _released(db, outcome) == [waiter]


def test_an_instance_failure_reports_the_slots_of_the_queued_nodes_it_skips(db):
    workflow = _define(db, [{"id": "bad", "executor": "noop"}, {"id": "a", "executor": "tests.release.one"}])
    failing, sent = _start(db, workflow)
    bad = next(d for d in sent if d.node_id == "bad")
    (slot,) = admission.admit(db, [d for d in sent if d.node_id == "a"])
    assert slot.instance_id == failing
    waiter, more = _start(db, _one_node(db))
    assert admission.admit(db, more) == []
    held = scheduling.claim(db, failing, "bad", bad.attempt, WORKER, bad.facts())
    assert held is not None
    failed = completion.fail(db, held, {"code": "X", "message": "for good"}, retryable=False)
    assert failed.finished is not None and failed.finished.status == "failed"
    assert _released(db, failed) == [waiter]


def test_a_hand_back_of_a_paused_instances_node_reports_its_slot(db):
    holder, waiter = _holder_and_waiter(db)
    held = scheduling.claim(db, holder.instance_id, "a", holder.attempt, WORKER, holder.facts())
    assert held is not None
    lifecycle.pause(db, holder.instance_id)
    outcome = recovery.hand_back_held(db, held, "asked to stop")
    assert outcome.dispatches == []  # paused: resume sends it
    assert _released(db, outcome) == [waiter]


def test_a_pause_hands_back_the_slot_of_its_admitted_unclaimed_node(db):
    holder, waiter = _holder_and_waiter(db)
    assert _in_use(db) == 1
    outcome = lifecycle.pause(db, holder.instance_id)
    assert _in_use(db) == 0
    assert _released(db, outcome) == [waiter]
    # the paused node's message, claimed after the resume, is refused: it waits for admission again
    resumed = lifecycle.resume(db, holder.instance_id)
    assert scheduling.claim(db, holder.instance_id, "a", holder.attempt, WORKER, holder.facts()) is None
    assert admission.admit(db, resumed.dispatches) == []  # the slot is the waiter's now
    assert views.status(db, holder.instance_id)["waitingFor"]["a"] == {"limit": GATE, "kind": "concurrency"}


def test_a_cancelled_running_attempt_keeps_its_slot_until_it_stops_or_its_heartbeat_expires(db):
    holder, waiter = _holder_and_waiter(db)
    held = scheduling.claim(db, holder.instance_id, "a", holder.attempt, WORKER, holder.facts())
    assert held is not None
    outcome = lifecycle.cancel(db, holder.instance_id)
    assert outcome.all_freed() == ()  # its executor may still be calling the limited resource
    assert _in_use(db) == 1
    assert admission.release(db, holder.limits) == []
    assert run_attempt(db, held, 30.0).dispatches == []  # its end is fenced off ...
    slot_holders.let_go(db, held.row_id, held.attempt)  # ... and its worker lets go of the slot
    assert _in_use(db) == 0
    assert [d.instance_id for d in admission.release(db, holder.limits)] == [waiter]

    # a cancelled attempt that never stops: the sweep frees its slot once its heartbeat expired
    second = next(d for d in admission.admit(db, scheduling.start(db, waiter).dispatches) if d)
    held = scheduling.claim(db, waiter, "a", second.attempt, WORKER, second.facts())
    assert held is not None
    third, sent = _start(db, _one_node(db))
    assert admission.admit(db, sent) == []
    lifecycle.cancel(db, waiter)
    assert recovery.sweep(db, heartbeat_timeout=60).dispatches == [] or _in_use(db) == 1
    with db.begin() as conn:
        conn.execute(
            update(NodeRow)
            .where(NodeRow.id == held.row_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=120))
        )
    report = recovery.sweep(db, heartbeat_timeout=60)
    assert any(g.name == GATE for o in report.outcomes for g in o.all_freed())
    assert third in [d.instance_id for d in report.dispatches]  # the freed slot is the next one's


def test_a_sub_workflow_nodes_end_reports_its_slot(db):
    child = _define(db, [{"id": "c", "executor": "noop"}])
    config = {"workflow": {"name": child}}
    parent = _define(db, [{"id": "sub", "type": "subworkflow", "config": config, "concurrency": 1}])
    first, (sub,) = _start(db, parent)
    (sent,) = admission.admit(db, [sub])
    second, more = _start(db, parent)
    assert admission.admit(db, more) == []
    held = scheduling.claim(db, first, "sub", sent.attempt, WORKER, sent.facts())
    assert held is not None
    started = run_attempt(db, held, 30.0)
    child_id = started.starts[0].instance_id if started.starts else None
    assert child_id is not None
    pending = scheduling.start(db, child_id).dispatches
    while pending:
        d = pending.pop()
        claim = scheduling.claim(db, d.instance_id, d.node_id, d.attempt, WORKER, d.facts())
        assert claim is not None
        pending += run_attempt(db, claim, 30.0).dispatches
    from orchestrator.nodes import subworkflow

    outcome = subworkflow.child_finished(db, child_id)
    assert views.status(db, first)["status"] == "completed"
    assert [g.name for g in outcome.all_freed()] == [f"node:{parent}/sub"]
    assert _released(db, outcome) == [second]


def test_a_rate_books_at_most_its_horizon_and_a_later_higher_priority_node_goes_first(db):
    workflow = _define(db, [{"id": "a", "executor": "noop", "rate": "1/s"}])
    backlog = [_start(db, workflow, priority="low") for _ in range(8)]
    sent = admission.admit(db, [d for _, found in backlog for d in found])
    assert len(sent) == limits.HORIZON_TOKENS
    assert max(d.countdown for d in sent) <= limits.HORIZON_TOKENS
    left = [i for i, _ in backlog if i not in {d.instance_id for d in sent}]
    waiting = views.status(db, left[-1])["waitingFor"]["a"]
    assert waiting == {"limit": f"node:{workflow}/a", "kind": "rate"}, waiting
    entry = next(e for e in limit_report.report(db) if e["name"] == f"node:{workflow}/a")
    assert entry["waiting"] >= len(left), entry  # the nodes beyond the horizon wait for the rate too
    urgent, found = _start(db, workflow, priority="critical")
    assert admission.admit(db, found) == []  # the horizon is booked: it waits, ahead of the backlog
    gates = found[0].limits
    first = wait_for(lambda: rate_horizon.release(db, gates), 10, "a token of the horizon to come due")
    assert first[0].instance_id == urgent

    # the sweep's pass lets the rest through as tokens come due, nothing is left waiting for good
    def all_admitted() -> bool:
        rate_horizon.sweep(db)
        with db.connect() as conn:
            rows = conn.execute(
                select(NodeRow.admitted_attempt, NodeRow.attempt).where(NodeRow.instance_id.in_(left))
            ).all()
        return all(r.admitted_attempt == r.attempt for r in rows)

    wait_for(all_admitted, 20, "the whole backlog to be admitted by passes")


def test_a_cancel_waits_for_a_start_committing_meanwhile_instead_of_a_conflict(db):
    workflow = _define(db, [{"id": "a", "executor": "noop"}])
    instance_id = create_instance(db, InstanceRequest(workflow=workflow, start=False)).instance_id
    locked = threading.Event()
    release = threading.Event()

    def start_in_between() -> None:
        with db.begin() as conn:
            conn.execute(update(InstanceRow).where(InstanceRow.id == instance_id).values(status="running"))
            locked.set()
            release.wait(30)

    starter = threading.Thread(target=start_in_between)
    starter.start()
    assert locked.wait(30)
    answer: dict[str, Any] = {}

    def cancel() -> None:
        try:
            answer["outcome"] = lifecycle.cancel(db, instance_id)
        except Exception as exc:  # the old behaviour: a 409
            answer["error"] = exc

    canceller = threading.Thread(target=cancel)
    canceller.start()

    def cancel_waits_on_the_row() -> bool:
        with db.connect() as conn:
            return bool(
                conn.execute(
                    text(
                        "SELECT COUNT(*) FROM information_schema.innodb_trx t"
                        " JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id"
                        " WHERE t.trx_state = 'LOCK WAIT' AND p.DB = DATABASE()"
                    )
                ).scalar()
            )

    # polled slower than 0.1 s: the server refreshes `innodb_trx` only once it was not read for that long
    wait_for(
        lambda: not canceller.is_alive() or cancel_waits_on_the_row(),
        30,
        "the cancel to wait for the instance row",
        interval=0.25,
    )
    assert canceller.is_alive(), answer  # it waits for the start's commit
    release.set()
    starter.join(30)
    canceller.join(30)
    assert "error" not in answer, answer.get("error")
    assert views.instance(db, instance_id)["status"] == "cancelled"
