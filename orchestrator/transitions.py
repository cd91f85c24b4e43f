"""The only code that writes a status column: guarded UPDATEs whose row count says who won.

MySQL has no RETURNING, so every change is `UPDATE ... WHERE id = ? AND status IN (...) [AND attempt = ?]`
and the caller learns from `rowcount` whether its compare-and-set took effect.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, update

from orchestrator.errors import InvalidTransition
from orchestrator.models import InstanceRow, NodeRow, utcnow
from orchestrator.states import (
    InstanceStatus,
    NodeStatus,
    can_move_instance,
    can_move_node,
    instance_sources,
    node_sources,
)


def move_instance(
    conn: Connection,
    instance_id: str,
    target: InstanceStatus,
    *,
    sources: Collection[InstanceStatus] | None = None,
    **values: Any,
) -> bool:
    """Move one instance to `target` if it is in one of `sources` (default: every legal source).

    Returns whether this call made the change. Raises ValueError for an edge the table forbids.
    """
    allowed = instance_sources(target) if sources is None else frozenset(sources)
    for source in allowed:
        if not can_move_instance(source, target):
            raise ValueError(f"instance transition {source} -> {target} is not in the table")
    values.setdefault("updated_at", utcnow())
    result = conn.execute(
        update(InstanceRow)
        .where(InstanceRow.id == instance_id, InstanceRow.status.in_([s.value for s in allowed]))
        .values(status=target.value, **values)
    )
    return result.rowcount == 1


def require_instance_move(
    conn: Connection,
    instance_id: str,
    current: InstanceStatus,
    target: InstanceStatus,
    **values: Any,
) -> None:
    """Move from the state the caller just read; raises InvalidTransition if illegal or raced."""
    if not can_move_instance(current, target):
        raise InvalidTransition(f"an instance cannot go from {current} to {target}")
    if not move_instance(conn, instance_id, target, sources=[current], **values):
        raise InvalidTransition(f"instance {instance_id} changed state concurrently; try again")


def move_node(
    conn: Connection,
    row_id: int,
    target: NodeStatus,
    *,
    sources: Collection[NodeStatus],
    fence: int | None = None,
    **values: Any,
) -> bool:
    """Move one node row; with `fence`, only while that attempt still holds it (fencing)."""
    return move_nodes(conn, target, NodeRow.id == row_id, sources=sources, fence=fence, **values) == 1


def move_nodes(
    conn: Connection,
    target: NodeStatus,
    *where: Any,
    sources: Collection[NodeStatus] | None = None,
    fence: int | None = None,
    **values: Any,
) -> int:
    """Move every node row matching `where` and in one of `sources`; returns how many moved."""
    allowed = node_sources(target) if sources is None else frozenset(sources)
    for source in allowed:
        if not can_move_node(source, target):
            raise ValueError(f"node transition {source} -> {target} is not in the table")
    values.setdefault("updated_at", utcnow())
    statement = update(NodeRow).where(NodeRow.status.in_([s.value for s in allowed]), *where)
    if fence is not None:
        statement = statement.where(NodeRow.attempt == fence)
    return conn.execute(statement.values(status=target.value, **values)).rowcount
