"""Sub-workflow nodes: the node starts a child instance and stays running until the child ends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from orchestrator import children, completion, instances, views
from orchestrator.definitions import NodeSpec
from orchestrator.errors import LostClaim
from orchestrator.models import InstanceRow, NodeRow
from orchestrator.outcomes import Claim, Outcome
from orchestrator.states import NodeStatus
from workers import dispatch


def start_child(engine: Engine, held: Claim, spec: NodeSpec, config: dict[str, Any]) -> Outcome:
    """Create (once per attempt, keyed by externalId) and start the child instance.

    The parent node keeps no lease while the child runs: the child's end completes or fails it (see
    `child_finished`). The recovery sweep steps in only when no child exists for the attempt (the
    worker died before creating it) or the child's end was never reported (`orchestrator.recovery`).
    """
    priority = "normal"
    with engine.connect() as conn:
        priority = conn.execute(
            select(InstanceRow.priority).where(InstanceRow.id == held.instance_id)
        ).scalar_one()
    child_input = config.get("input") or {}
    request = instances.InstanceRequest(
        workflow=str(spec.subworkflow_name),
        version=spec.subworkflow_version,
        input=child_input,
        priority=priority,
        parent_instance_id=held.instance_id,
        parent_node_id=held.node_id,
        parent_attempt=held.attempt,
        external_id=children.child_key(held.instance_id, held.node_id, held.attempt),
    )
    created = instances.create_instance(engine, request)
    dispatch.send_schedule(created.instance_id, priority)
    return Outcome()


def child_finished(engine: Engine, child_id: str) -> Outcome:
    """Complete the parent node with the child's output, or fail it with the child's error."""
    child = views.instance(engine, child_id)
    parent_id, node_id = child["parentInstanceId"], child["parentNodeId"]
    attempt = children.attempt_of(child.get("externalId"))
    with engine.connect() as conn:
        row = conn.execute(
            select(
                NodeRow.id,
                NodeRow.attempt,
                NodeRow.status,
                NodeRow.worker_id,
                InstanceRow.definition_id,
                InstanceRow.workflow_name,
            )
            .join(InstanceRow, InstanceRow.id == NodeRow.instance_id)
            .where(NodeRow.instance_id == parent_id, NodeRow.node_id == node_id)
        ).first()
    if (
        row is None
        or row.status != NodeStatus.RUNNING.value
        or (attempt is not None and row.attempt != attempt)
    ):
        return Outcome()  # the parent moved on (cancelled, handed back): this child's end is stale
    held = Claim(
        row.id,
        parent_id,
        node_id,
        row.attempt,
        row.worker_id or "subworkflow",
        row.definition_id,
        row.workflow_name,
        None,
        {},
    )
    try:
        if child["status"] == "completed":
            return completion.complete(engine, held, child["output"])
        error = {
            "code": "SUBWORKFLOW_FAILED",
            "message": f"child instance {child_id} {child['status']}",
            "childInstanceId": child_id,
            "childError": child["error"],
        }
        return completion.fail(engine, held, error, retryable=child["status"] == "failed")
    except LostClaim:
        return Outcome()
