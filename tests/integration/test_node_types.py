"""A node type that runs no executor hands its node off: a sub-workflow node's attempt creates its
child and returns it to be started after the commit, sending nothing itself (the core never talks to
the broker), and the node stays running until the child's end completes it."""

from __future__ import annotations

from sqlalchemy import Engine, select

from orchestrator import catalog, scheduling
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.models import InstanceRow
from orchestrator.nodes import subworkflow
from tests.acceptance.helpers import nodes, run_here, subworkflow_pair
from workers.runtime import Ending, run

CHILD, PARENT = subworkflow_pair("handoff")


def test_a_sub_workflow_attempt_returns_its_child_to_start_and_its_end_completes_the_node(db: Engine) -> None:
    catalog.save_definition(db, CHILD)
    catalog.save_definition(db, PARENT)
    parent_id = create_instance(db, InstanceRequest(PARENT["name"], start=False)).instance_id
    (d,) = scheduling.start(db, parent_id).dispatches
    held = scheduling.claim(db, parent_id, "sub", d.attempt, "w", d.facts())
    assert held is not None

    attempt = run(db, held, 30.0)

    assert attempt.ending is Ending.HANDED_OFF and attempt.outcome.dispatches == []
    with db.connect() as conn:
        child_id = conn.execute(
            select(InstanceRow.id).where(
                InstanceRow.external_id == subworkflow.child_key(parent_id, "sub", d.attempt)
            )
        ).scalar_one()
    assert [(s.instance_id, s.priority) for s in attempt.outcome.starts] == [(child_id, "normal")]
    assert nodes(db, parent_id)["sub"].status == "running"

    ended = run_here(db, child_id)
    assert ended.finished is not None and ended.finished.parent_instance_id == parent_id
    released = subworkflow.child_finished(db, child_id)
    assert nodes(db, parent_id)["sub"].status == "completed"
    assert [r.node_id for r in released.dispatches] == ["after"]
