"""An attempt whose executor stops because it was asked to, against MySQL in one process: it is handed
back (queued, attempt + 1, no failure counted, no retry used) and waits unsent while its instance is
paused; resume sends it and it starts from its checkpoint. A cancel still fences it off; a stop that
nobody asked for is an ordinary failure."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, select

from orchestrator import catalog, lifecycle, scheduling
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.models import LogRow, NodeRow
from orchestrator.outcomes import Claim
from tests.support import stop_executors
from workers.runtime import Attempt, Ending, run

WORKER = "stop-test"


def _start(engine: Engine, executor: str, **node: Any) -> tuple[str, Claim]:
    """An instance of `work` (the executor) then `after` (noop), started, with `work` claimed."""
    name = f"stops-{uuid.uuid4().hex[:8]}"
    work = {"id": "work", "type": "task", "executor": executor, **node}
    after = {"id": "after", "type": "task", "executor": "noop", "dependsOn": ["work"]}
    catalog.save_definition(engine, {"name": name, "version": "1.0.0", "nodes": [work, after]})
    instance_id = create_instance(engine, InstanceRequest(workflow=name)).instance_id
    (first,) = scheduling.start(engine, instance_id).dispatches
    held = scheduling.claim(engine, instance_id, "work", first.attempt, WORKER, first.facts())
    assert held is not None
    return instance_id, held


def _run_dispatched(engine: Engine, attempt: Attempt) -> list[Attempt]:
    """Run what an attempt sent, and what those sent, as workers would; every attempt, in order."""
    ran, pending = [], list(attempt.outcome.dispatches)
    while pending:
        d = pending.pop(0)
        held = scheduling.claim(engine, d.instance_id, d.node_id, d.attempt, WORKER, d.facts())
        assert held is not None, d
        ran.append(run(engine, held, 30.0))
        pending.extend(ran[-1].outcome.dispatches)
    return ran


def _node(engine: Engine, instance_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(NodeRow.__table__).where(NodeRow.instance_id == instance_id, NodeRow.node_id == "work")
        ).one()


def _lines(engine: Engine, instance_id: str) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(LogRow.level, LogRow.message)
            .where(LogRow.instance_id == instance_id, LogRow.node_id == "work")
            .order_by(LogRow.id)
        ).all()
    return [(row.level, row.message) for row in rows]


def test_a_stop_while_paused_is_handed_back_unsent_and_resume_continues_from_the_checkpoint(db):
    instance_id, held = _start(db, stop_executors.STOPS)  # no retries: a failure would end it
    lifecycle.pause(db, instance_id)

    stopped = run(db, held, 30.0)

    assert (stopped.ending, stopped.outcome.dispatches, stopped.outcome.retrying) == (
        Ending.HANDED_BACK,
        [],  # nothing is sent while paused
        False,
    )
    row = _node(db, instance_id)
    assert (row.status, row.attempt, row.failures, row.handbacks, row.error) == ("queued", 2, 0, 0, None)
    assert _lines(db, instance_id) == [
        ("info", "node running"),
        ("info", "node handed back (asked to stop: stopped in attempt 1); attempt 2 queued"),
    ]
    resumed = lifecycle.resume(db, instance_id)
    assert [(d.node_id, d.attempt) for d in resumed.dispatches] == [("work", 2)]
    ran = _run_dispatched(db, Attempt(resumed, Ending.COMPLETED, 0, 0.0))
    assert [a.ending for a in ran] == [Ending.COMPLETED, Ending.COMPLETED]
    row = _node(db, instance_id)
    assert (row.status, row.failures, row.output) == ("completed", 0, {"startedFrom": {"stoppedIn": 1}})
    assert ran[-1].outcome.finished is not None and ran[-1].outcome.finished.status == "completed"


def test_an_error_raised_once_a_stop_was_asked_is_a_hand_back_not_a_failure(db):
    instance_id, held = _start(db, stop_executors.FAILS_WHEN_ASKED)
    lifecycle.pause(db, instance_id)

    assert run(db, held, 30.0).ending is Ending.HANDED_BACK
    row = _node(db, instance_id)
    assert (row.status, row.attempt, row.failures, row.error) == ("queued", 2, 0, None)


def test_a_cancel_still_cancels_a_node_that_stops(db):
    instance_id, held = _start(db, stop_executors.STOPS)
    lifecycle.cancel(db, instance_id)

    stopped = run(db, held, 30.0)

    assert (stopped.ending, stopped.outcome.dispatches) == (Ending.FENCED, [])
    assert (_node(db, instance_id).status, _node(db, instance_id).attempt) == ("cancelled", 1)


def test_a_stop_nobody_asked_for_fails_the_attempt(db):
    instance_id, held = _start(db, stop_executors.STOPS_UNASKED)

    failed = run(db, held, 30.0)

    assert failed.ending is Ending.FAILED and failed.outcome.finished is not None
    row = _node(db, instance_id)
    assert (row.status, row.failures, row.error["code"]) == ("failed", 1, "EXECUTOR_ERROR")
    assert "nobody asked" in row.error["message"]


def test_a_retry_queued_while_paused_is_told_apart_from_a_failure(db):
    instance_id, held = _start(db, stop_executors.STOPS_UNASKED, retries=1)
    lifecycle.pause(db, instance_id)

    failed = run(db, held, 30.0)

    # the retry waits for resume (nothing sent), yet it is a retry, not the node's end
    assert (failed.ending, failed.outcome.retrying, failed.outcome.dispatches) == (Ending.RETRYING, True, [])
    assert (_node(db, instance_id).status, _node(db, instance_id).failures) == ("queued", 1)
