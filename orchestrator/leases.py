"""A claimed node is a lease: heartbeats keep it, and checkpoints are written only under it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update

from orchestrator import storable
from orchestrator.db import retrying
from orchestrator.errors import CheckpointNotStorable, LostClaim
from orchestrator.models import CheckpointRow, InstanceRow, NodeRow, utcnow
from orchestrator.outcomes import Claim
from orchestrator.states import InstanceStatus, NodeStatus


def _renew(conn: Any, held: Claim) -> bool:
    return (
        conn.execute(
            update(NodeRow)
            .where(
                NodeRow.id == held.row_id,
                NodeRow.status == NodeStatus.RUNNING.value,
                NodeRow.attempt == held.attempt,
            )
            .values(heartbeat_at=utcnow())
        ).rowcount
        == 1
    )


_RENEW_NODE = (
    update(NodeRow)
    .where(
        NodeRow.instance_id == bindparam("b_instance"),
        NodeRow.node_id == bindparam("b_node"),
        NodeRow.status == NodeStatus.RUNNING.value,
        NodeRow.attempt == bindparam("b_attempt"),
    )
    .values(heartbeat_at=bindparam("b_now"))
)


def renew_node(conn: Any, instance_id: str, node_id: str, attempt: int) -> bool:
    """Renew the lease of a node known by its ids, in the caller's transaction; whether `attempt`
    still holds it. A sub-workflow node's child is created under this, so that the child and a
    hand-back of the node cannot both happen (`recovery.hand_back`)."""
    params = {"b_instance": instance_id, "b_node": node_id, "b_attempt": attempt, "b_now": utcnow()}
    return conn.execute(_RENEW_NODE, params).rowcount == 1


@retrying()
def heartbeat(engine: Engine, held: Claim) -> bool:
    """Renew the lease. Returns False when the node should stop: the claim was lost (fenced, handed
    back, cancelled) or its instance is no longer running (paused, cancelled, failed)."""
    with engine.begin() as conn:
        if not _renew(conn, held):
            return False
        status = conn.execute(select(InstanceRow.status).where(InstanceRow.id == held.instance_id)).scalar()
    return status == InstanceStatus.RUNNING.value


@retrying()
def save_checkpoint(engine: Engine, held: Claim, data: Any) -> None:
    """Persist progress for this node; the next attempt reads the newest one. Raises LostClaim when
    this attempt no longer holds the node, so a stale worker cannot overwrite newer progress, and
    CheckpointNotStorable for data the store cannot hold (`storable.py`)."""
    what = f"a checkpoint of node {held.node_id}"
    storable.check(engine, data, CheckpointNotStorable, what)
    with engine.begin() as conn:
        if not _renew(conn, held):
            raise LostClaim(f"node {held.node_id} attempt {held.attempt} no longer holds its claim")
        with storable.refusals(CheckpointNotStorable, what):
            conn.execute(
                insert(CheckpointRow).values(
                    instance_id=held.instance_id,
                    node_id=held.node_id,
                    attempt=held.attempt,
                    data=data,
                    created_at=utcnow(),
                )
            )
