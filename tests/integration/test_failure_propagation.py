"""What a node failing for good does to the rest of its instance, against MySQL in one process: the
nodes that can no longer run are skipped with their reason, a node still running ends on its own,
and a retry resets what the failure skipped but not what a `when` skipped."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from orchestrator import catalog, completion, lifecycle, recovery, scheduling, views
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.models import LogRow, NodeRow, utcnow
from orchestrator.outcomes import Claim, Dispatch
from tests.acceptance.helpers import run_here
from tests.support import flaky_executors
from tests.support.flaky_executors import set_flag

WORKER = "propagation-test"
FATAL = {"code": "EXECUTOR_ERROR", "message": "planned"}


def _task(node_id: str, *deps: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "task", "executor": "noop", "dependsOn": list(deps), **extra}


def _start(engine: Engine, nodes: list[dict[str, Any]]) -> tuple[str, dict[str, Dispatch]]:
    definition = {"name": f"propagation-{uuid.uuid4().hex[:8]}", "version": "1.0.0", "nodes": nodes}
    catalog.save_definition(engine, definition)
    created = create_instance(engine, InstanceRequest(workflow=definition["name"]))
    dispatches = scheduling.start(engine, created.instance_id).dispatches
    return created.instance_id, {d.node_id: d for d in dispatches}


def _claim(engine: Engine, d: Dispatch) -> Claim:
    held = scheduling.claim(engine, d.instance_id, d.node_id, d.attempt, WORKER, d.facts())
    assert held is not None
    return held


def _rows(engine: Engine, instance_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(select(NodeRow.__table__).where(NodeRow.instance_id == instance_id)).all()
    return {row.node_id: row for row in rows}


def _codes(engine: Engine, instance_id: str) -> dict[str, tuple[str, str | None]]:
    return {
        node: (row.status, (row.error or {}).get("code")) for node, row in _rows(engine, instance_id).items()
    }


def test_a_failure_skips_its_successors_and_the_nodes_of_other_branches_with_their_reasons(db):
    # a and b run side by side; c follows a, d follows b, e (a join) follows c and d; f was never
    # claimed. a fails for good while b still runs.
    instance_id, sent = _start(
        db, [_task("a"), _task("b"), _task("f"), _task("c", "a"), _task("d", "b"), _task("e", "c", "d")]
    )
    a, b = _claim(db, sent["a"]), _claim(db, sent["b"])

    outcome = completion.fail(db, a, FATAL, retryable=False)

    assert outcome.finished is not None and outcome.finished.status == "failed"
    assert _codes(db, instance_id) == {
        "a": ("failed", "EXECUTOR_ERROR"),
        "b": ("running", None),  # left alone: it ends on its own
        "c": ("skipped", "UPSTREAM_FAILED"),
        "e": ("skipped", "UPSTREAM_FAILED"),  # a join with one failed dependency
        "d": ("skipped", "INSTANCE_FAILED"),  # another branch, not reached
        "f": ("skipped", "INSTANCE_FAILED"),  # queued, never claimed
    }
    with db.connect() as conn:
        lines = list(
            conn.execute(
                select(LogRow.node_id, LogRow.message)
                .where(LogRow.instance_id == instance_id, LogRow.message.like("%skipped%"))
                .order_by(LogRow.id)
            ).all()
        )
    assert sorted(lines) == [
        ("c", "node skipped: upstream failed (node a failed)"),
        ("d", "node skipped: instance failed (node a failed)"),
        ("e", "node skipped: upstream failed (node a failed)"),
        ("f", "node skipped: instance failed (node a failed)"),
    ]

    # b completes afterwards: nothing is released in a failed instance, d stays skipped
    assert completion.complete(db, b, {"ok": True}).dispatches == []
    assert _codes(db, instance_id)["b"] == ("completed", None)
    assert _codes(db, instance_id)["d"] == ("skipped", "INSTANCE_FAILED")
    status = views.status(db, instance_id)
    assert (status["status"], status["progress"]) == ("failed", 33)  # a and b of 6
    assert sorted(status["skippedNodes"]) == ["c", "d", "e", "f"]


def test_a_node_failing_in_an_instance_that_has_already_failed_is_not_queued_for_a_retry(db):
    instance_id, sent = _start(db, [_task("a"), _task("b", retries=3)])
    a, b = _claim(db, sent["a"]), _claim(db, sent["b"])
    completion.fail(db, a, FATAL, retryable=False)

    # b has retries left, but nothing of a failed instance is sent any more: queued, it would wait
    # for ever; it fails instead (a retry of the instance runs it again)
    outcome = completion.fail(db, b, {"code": "EXECUTOR_ERROR", "message": "boom"}, retryable=True)
    assert outcome.dispatches == [] and outcome.finished is None
    assert _codes(db, instance_id)["b"] == ("failed", "EXECUTOR_ERROR")


def test_a_retry_resets_the_nodes_a_failure_skipped_but_not_those_a_when_skipped(db, tmp_path):
    assert flaky_executors.EXECUTOR
    flag = tmp_path / "flag"
    instance_id, _ = _start(
        db,
        [
            _task("a"),
            _task("quiet", "a", when="${false}"),
            {**_task("flaky", "quiet"), "executor": flaky_executors.EXECUTOR, "config": {"flag": str(flag)}},
            _task("after", "flaky"),
        ],
    )
    run_here(db, instance_id, WORKER)
    assert _codes(db, instance_id) == {
        "a": ("completed", None),
        "quiet": ("skipped", None),
        "flaky": ("failed", "EXECUTOR_ERROR"),
        "after": ("skipped", "UPSTREAM_FAILED"),
    }
    reasons = {n["nodeId"]: n["skipReason"] for n in views.nodes(db, instance_id)}
    assert reasons == {"a": None, "quiet": "condition false", "flaky": None, "after": "upstream failed"}
    assert views.status(db, instance_id)["progress"] == 75  # a, quiet (its own outcome) and flaky

    set_flag(flag)
    outcome = lifecycle.retry(db, instance_id)
    assert sorted(d.node_id for d in outcome.dispatches) == ["flaky"]
    run_here(db, instance_id, WORKER, first=outcome)
    assert _codes(db, instance_id) == {
        "a": ("completed", None),
        "quiet": ("skipped", None),  # kept its decision
        "flaky": ("completed", None),
        "after": ("completed", None),
    }
    assert views.status(db, instance_id)["status"] == "completed"


def test_a_retry_from_a_node_resets_a_when_skipped_node_downstream_of_it(db):
    instance_id, _ = _start(
        db,
        [
            _task("a"),
            _task("quiet", "a", when="${false}"),  # runs (and is skipped) before boom fails
            {**_task("boom", "a"), "executor": "tests.fatal"},
        ],
    )
    run_here(db, instance_id, WORKER)
    assert _codes(db, instance_id)["quiet"] == ("skipped", None)

    lifecycle.retry(db, instance_id, from_node="a")
    rows = _rows(db, instance_id)
    assert {node: row.status for node, row in rows.items()} == {
        "a": "queued",
        "boom": "pending",
        "quiet": "pending",
    }


def test_a_node_failed_by_the_sweep_for_losing_its_worker_too_often_skips_its_successors(db):
    instance_id, sent = _start(db, [_task("a"), _task("b", "a")])
    _claim(db, sent["a"])
    # the node has already been handed back as often as it may be, and its lease expired again
    with db.begin() as conn:
        conn.execute(
            update(NodeRow)
            .where(NodeRow.instance_id == instance_id, NodeRow.node_id == "a")
            .values(handbacks=recovery.MAX_HANDBACKS, heartbeat_at=utcnow() - timedelta(seconds=60))
        )

    report = recovery.sweep(db, 3.0)

    assert [f.instance_id for f in report.finished] == [instance_id]
    assert _codes(db, instance_id) == {
        "a": ("failed", "TOO_MANY_HANDBACKS"),
        "b": ("skipped", "UPSTREAM_FAILED"),
    }
