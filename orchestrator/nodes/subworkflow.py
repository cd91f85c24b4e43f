"""`subworkflow` nodes: the node starts a child instance and stays running until the child ends.

Starts: the claiming worker creates the child (once per attempt, keyed by its externalId) and frees
its slot; the parent node keeps no lease meanwhile. Completes: the child's end (`child_finished`,
sent by the edge when an instance with a parent ends) completes the node with the child's output or
fails it with the child's error. Recovered by the sweep when no child exists for the running attempt
(its worker died between the claim and the child) or the child's end never reached the node.

The key makes the child's creation idempotent per attempt (a redelivered `run_node` finds the child
it already created) and lets the child's end name the attempt it belongs to; the sweep matches it in
SQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, String, literal, select, type_coerce, update
from sqlalchemy.orm import aliased

from orchestrator import catalog, completion, instances, slot_holders, views
from orchestrator.definitions import NodeSpec
from orchestrator.errors import LostClaim
from orchestrator.models import InstanceRow, NodeRow, utcnow
from orchestrator.outcomes import Claim, Finished, Outcome, StartInstance
from orchestrator.states import FINISHED_INSTANCE
from orchestrator.states import InstanceStatus as I
from orchestrator.states import NodeStatus as N

PREFIX = "subworkflow:"
BATCH = 500


def child_key(parent_id: str, node_id: str, attempt: int) -> str:
    return f"{PREFIX}{parent_id}:{node_id}:{attempt}"


def attempt_of(key: str | None) -> int | None:
    """The parent node's attempt a child was created for; None for an instance not made that way."""
    if not key or not key.startswith(PREFIX):
        return None
    return int(key.rsplit(":", 1)[1])


Child = aliased(InstanceRow, name="child")


def of_current_attempt() -> ColumnElement[bool]:
    """SQL: `Child` is the child instance of the `NodeRow` in the query, for the node's attempt."""
    # the attempt joins the string as a number, not CAST(... AS CHAR): a cast takes the
    # connection's collation, which may not mix with the columns' own
    attempt = type_coerce(NodeRow.attempt, String)
    key = literal(PREFIX, String) + NodeRow.instance_id + ":" + NodeRow.node_id + ":" + attempt
    return (
        (Child.parent_instance_id == NodeRow.instance_id)
        & (Child.parent_node_id == NodeRow.node_id)
        & (Child.external_id == key)
    )


def start_child(engine: Engine, held: Claim, spec: NodeSpec, config: dict[str, Any]) -> Outcome:
    """Create (once per attempt, keyed by externalId) the child instance, and return it to be started.

    The child is created under a renewal of the parent node's heartbeat (`instances`), so the sweep's
    hand-back of a node without a child and this creation cannot both win. Raises LostClaim when the
    attempt no longer holds the node.
    """
    with engine.connect() as conn:
        priority = conn.execute(
            select(InstanceRow.priority).where(InstanceRow.id == held.instance_id)
        ).scalar_one()
    request = instances.InstanceRequest(
        workflow=str(spec.subworkflow_name),
        version=spec.subworkflow_version,
        input=config.get("input") or {},
        priority=priority,
        parent_instance_id=held.instance_id,
        parent_node_id=held.node_id,
        parent_attempt=held.attempt,
        external_id=child_key(held.instance_id, held.node_id, held.attempt),
    )
    created = instances.create_instance(engine, request)
    # started even when a redelivery found it created: starting is idempotent
    return Outcome(starts=[StartInstance(created.instance_id, priority)])


_PARENT_NODE = select(
    NodeRow.id,
    NodeRow.attempt,
    NodeRow.status,
    NodeRow.worker_id,
    InstanceRow.definition_id,
    InstanceRow.workflow_name,
).join(InstanceRow, InstanceRow.id == NodeRow.instance_id)


def child_finished(engine: Engine, child_id: str) -> Outcome:
    """Complete the parent node with the child's output, or fail it with the child's error. A stale
    end (the parent node moved on: cancelled, handed back to another attempt) changes nothing."""
    child = views.instance(engine, child_id)
    parent_id, node_id = child["parentInstanceId"], child["parentNodeId"]
    attempt = attempt_of(child.get("externalId"))
    with engine.connect() as conn:
        row = conn.execute(
            _PARENT_NODE.where(NodeRow.instance_id == parent_id, NodeRow.node_id == node_id)
        ).first()
    if row is None or row.status != N.RUNNING.value or (attempt is not None and row.attempt != attempt):
        return Outcome()
    held = Claim(
        row_id=row.id,
        instance_id=parent_id,
        node_id=node_id,
        attempt=row.attempt,
        worker_id=row.worker_id or "subworkflow",
        definition_id=row.definition_id,
        workflow=row.workflow_name,
        last_checkpoint=None,
        outputs={},
    )
    try:
        if child["status"] == "completed":
            outcome = completion.complete(engine, held, child["output"])
        else:
            error = {
                "code": "SUBWORKFLOW_FAILED",
                "message": f"child instance {child_id} {child['status']}",
                "childInstanceId": child_id,
                "childError": child["error"],
            }
            outcome = completion.fail(engine, held, error, retryable=child["status"] == "failed")
    except LostClaim:
        return Outcome()
    # the node's end (committed) frees its slot under its own concurrency limit, if it has one
    definition = catalog.load_definition(engine, row.definition_id)
    outcome.freed = slot_holders.merge(
        outcome.freed, slot_holders.of_node(definition, row.workflow_name, node_id, None)
    )
    return outcome


def unreported_children(engine: Engine, older_than: float) -> list[Finished]:
    """Child instances that ended `older_than` seconds ago while their parent node still runs the
    attempt they were created for: the `child_finished` message was lost (a broker restart, a worker
    killed while handling it). Reported again; `child_finished` acts only while the node still
    runs that attempt, so a report that was only slow makes the copy a no-op. The parent node's
    heartbeat (renewed when the child was created, otherwise unused while it runs) is the clock: a
    report stuck behind a backlog is repeated once per `older_than`, not once per sweep."""
    now = utcnow()
    cutoff = now - timedelta(seconds=older_than)
    with engine.begin() as conn:
        rows = conn.execute(
            select(
                NodeRow.id,
                Child.id.label("child_id"),
                Child.status,
                Child.parent_instance_id,
                Child.parent_node_id,
            )
            .select_from(NodeRow)
            .join(Child, of_current_attempt())
            .where(
                NodeRow.status == N.RUNNING.value,
                TYPE.rows(),
                NodeRow.heartbeat_at < cutoff,
                Child.status.in_([status.value for status in FINISHED_INSTANCE]),
                Child.finished_at < cutoff,
            )
            .limit(BATCH)
        ).all()
        if rows:
            conn.execute(update(NodeRow).where(NodeRow.id.in_([r.id for r in rows])).values(heartbeat_at=now))
    # no callback URL: the child's own webhook was sent when it ended
    return [Finished(r.child_id, r.status, r.parent_instance_id, r.parent_node_id, None) for r in rows]


def _report_unreported_children(engine: Engine, older_than: float) -> list[Outcome]:
    return [Outcome(finished=f) for f in unreported_children(engine, older_than)]


def open_children(engine: Engine, instance_id: str) -> list[str]:
    """Sub-workflow instances of `instance_id` that have not ended (to cancel when it ends)."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(InstanceRow.id).where(
                    InstanceRow.parent_instance_id == instance_id,
                    InstanceRow.status.in_([I.PENDING.value, I.RUNNING.value, I.PAUSED.value]),
                )
            ).scalars()
        )


class SubworkflowNode:
    name = "subworkflow"
    runs_executor = False

    def rows(self) -> ColumnElement[bool]:
        return NodeRow.type == self.name

    def start(self, engine: Engine, held: Claim, spec: NodeSpec, config: dict[str, Any]) -> Outcome:
        return start_child(engine, held, spec, config)

    def lost(self, cutoff: datetime, gone: Any) -> ColumnElement[bool]:
        # no heartbeat while the child runs: lost only when the claim is that old and no child exists
        # for the attempt, as when its worker died between the claim and the child
        no_child = ~select(Child.id).where(of_current_attempt()).exists()
        return self.rows() & (NodeRow.heartbeat_at < cutoff) & no_child

    def untouched_since(self, cutoff: datetime) -> datetime | None:
        # its worker may yet create the child: only a claim still that old goes
        return cutoff

    def sweep_actions(self) -> tuple[Any, ...]:
        return (_report_unreported_children,)


TYPE = SubworkflowNode()
