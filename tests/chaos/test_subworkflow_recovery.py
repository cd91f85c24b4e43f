"""A sub-workflow node has no heartbeat while its child runs; the sweep still recovers it when its
worker died between the claim and the child's creation, and when the child's end never reached it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from orchestrator import scheduling
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.models import InstanceRow
from orchestrator.nodes.subworkflow import child_key
from tests.acceptance.helpers import define, log_messages, nodes, run_here, start, subworkflow_pair

CHILD, PARENT = subworkflow_pair("lone")
DEAD = "worker-that-died"


def _claim_sub_as_a_dead_worker(db: Engine, live_api: Any) -> str:
    """A parent instance whose `sub` node a worker claimed and then died: running, attempt 1."""
    define(live_api, CHILD)
    define(live_api, PARENT)
    parent_id = start(live_api, PARENT["name"], start=False)  # no `schedule` message: started here
    (dispatch,) = scheduling.start(db, parent_id).dispatches
    held = scheduling.claim(db, parent_id, "sub", dispatch.attempt, DEAD, dispatch.facts())
    assert held is not None and nodes(db, parent_id)["sub"].status == "running"
    return parent_id


def _children(db: Engine, parent_id: str) -> list[Any]:
    with db.connect() as conn:
        return list(
            conn.execute(
                select(InstanceRow.id, InstanceRow.external_id, InstanceRow.status).where(
                    InstanceRow.parent_instance_id == parent_id
                )
            ).all()
        )


def test_a_sub_workflow_node_whose_worker_died_before_creating_the_child_is_handed_back(
    db, live_api, processes
):
    parent_id = _claim_sub_as_a_dead_worker(db, live_api)
    processes.worker("w1")
    processes.beat()

    assert live_api.wait_status(parent_id, timeout=60)["status"] == "completed"
    sub = nodes(db, parent_id)["sub"]
    assert sub.attempt == 2 and sub.worker_id == "w1", sub
    # one child, created by the second attempt; the dead worker's attempt never made one
    assert [c.external_id for c in _children(db, parent_id)] == [child_key(parent_id, "sub", 2)]
    assert any(m.startswith("node handed back") for m in log_messages(db, parent_id, "sub"))


def test_a_child_whose_end_never_reached_its_parent_node_is_reported_again(db, live_api, processes):
    parent_id = _claim_sub_as_a_dead_worker(db, live_api)
    # the child was created and ran to its end, but the `child_finished` message was lost
    child = create_instance(
        db,
        InstanceRequest(
            workflow=CHILD["name"],
            parent_instance_id=parent_id,
            parent_node_id="sub",
            external_id=child_key(parent_id, "sub", 1),
        ),
    )
    outcome = run_here(db, child.instance_id, DEAD)
    assert outcome.finished is not None and outcome.finished.parent_instance_id == parent_id  # dropped
    assert nodes(db, parent_id)["sub"].status == "running"

    processes.worker("w1")
    processes.beat()

    assert live_api.wait_status(parent_id, timeout=60)["status"] == "completed"
    sub = nodes(db, parent_id)["sub"]
    assert sub.attempt == 1 and sub.status == "completed", sub  # completed by the child, not re-run
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(InstanceRow)).scalar_one() == 2
