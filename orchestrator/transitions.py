"""The only code that writes a status column: guarded UPDATEs whose row count says who won.

MySQL has no RETURNING, so every change is `UPDATE ... WHERE id = ? AND status IN (...) [AND attempt = ?]`
and the caller learns from `rowcount` whether its compare-and-set took effect.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Update, bindparam, func, or_, select, update

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


# The node path's three transitions, built once. Building a guarded UPDATE per call (move_nodes) cost
# more CPU than executing it; these take only bound values. Same guards, same row-count contract.


def _prepared(target: NodeStatus, sources: Collection[NodeStatus], *where: Any) -> Update:
    for source in sources:
        if not can_move_node(source, target):
            raise ValueError(f"node transition {source} -> {target} is not in the table")
    return update(NodeRow).where(NodeRow.status.in_([s.value for s in sources]), *where)


_INSTANCE_RUNNING = (
    select(InstanceRow.id)
    .where(InstanceRow.id == bindparam("b_instance"), InstanceRow.status == InstanceStatus.RUNNING.value)
    .exists()
)
_CLAIM = _prepared(
    NodeStatus.RUNNING,
    [NodeStatus.QUEUED],
    NodeRow.instance_id == bindparam("b_instance"),
    NodeRow.node_id == bindparam("b_node"),
    NodeRow.attempt == bindparam("b_fence"),
    _INSTANCE_RUNNING,
    # a node waiting for a limit's slot was not sent: a stray copy of its message must not run it
    or_(NodeRow.limit_wait.is_(None), NodeRow.admitted_attempt == NodeRow.attempt),
).values(
    status=NodeStatus.RUNNING.value,
    limit_wait=None,
    worker_id=bindparam("b_worker"),
    started_at=bindparam("b_now"),
    heartbeat_at=bindparam("b_now"),
    finished_at=None,
    updated_at=bindparam("b_now"),
)
# keyed (source, target): a wait or sleep node completes from `waiting` (a signal, its timeout, its
# timer), not `running`
_FINISH = {
    (source, target): _prepared(
        target,
        [source],
        NodeRow.id == bindparam("b_row"),
        NodeRow.attempt == bindparam("b_fence"),
    ).values(
        status=target.value,
        output=bindparam("b_output"),
        error=None,
        finished_at=bindparam("b_now"),
        heartbeat_at=None,
        updated_at=bindparam("b_now"),
    )
    for source, target in (
        (NodeStatus.RUNNING, NodeStatus.COMPLETED),
        (NodeStatus.RUNNING, NodeStatus.SKIPPED),
        (NodeStatus.WAITING, NodeStatus.COMPLETED),
    )
}
_RELEASE_VALUES = {
    "status": NodeStatus.QUEUED.value,
    "attempt": NodeRow.attempt + 1,
    "pending_deps": NodeRow.pending_deps - 1,
    "queued_at": bindparam("b_now"),
    "not_before": None,
    "updated_at": bindparam("b_now"),
}
_RELEASE = _prepared(
    NodeStatus.QUEUED, [NodeStatus.PENDING], NodeRow.id.in_(bindparam("b_ids", expanding=True))
).values(**_RELEASE_VALUES)
_RELEASE_WHILE_RUNNING = _RELEASE.where(_INSTANCE_RUNNING)


_START = (
    update(InstanceRow)
    .where(InstanceRow.id == bindparam("b_instance"), InstanceRow.status == InstanceStatus.PENDING.value)
    .values(
        status=InstanceStatus.RUNNING.value,
        started_at=func.coalesce(InstanceRow.started_at, bindparam("b_now")),
        updated_at=bindparam("b_now"),
    )
)
# the same, only once its startAt (if any) has come
_START_DUE = _START.where(or_(InstanceRow.start_at.is_(None), InstanceRow.start_at <= bindparam("b_now")))
_QUEUE_READY = _prepared(
    NodeStatus.QUEUED,
    [NodeStatus.PENDING],
    NodeRow.instance_id == bindparam("b_instance"),
    NodeRow.pending_deps == 0,
    NodeRow.map_node_id.is_(None),  # a map's items are queued by their map, not by dependencies
).values(
    status=NodeStatus.QUEUED.value,
    attempt=NodeRow.attempt + 1,
    queued_at=bindparam("b_now"),
    not_before=None,
    updated_at=bindparam("b_now"),
)


def start_instance(conn: Connection, instance_id: str, now: datetime, *, early: bool = False) -> bool:
    """pending -> running (keeping a `started_at` set before, as by a retry), not before its startAt
    unless `early`; whether this call won."""
    if not can_move_instance(InstanceStatus.PENDING, InstanceStatus.RUNNING):
        raise ValueError("instance transition pending -> running is not in the table")
    statement = _START if early else _START_DUE
    return conn.execute(statement, {"b_instance": instance_id, "b_now": now}).rowcount == 1


def queue_ready(conn: Connection, instance_id: str, now: datetime) -> int:
    """pending -> queued (next attempt) for every node of the instance with no dependency left."""
    return conn.execute(_QUEUE_READY, {"b_instance": instance_id, "b_now": now}).rowcount


def claim_node(
    conn: Connection, instance_id: str, node_id: str, attempt: int, worker_id: str, now: datetime
) -> bool:
    """queued -> running for `attempt`, only while the instance runs; whether this call won."""
    params = {"b_instance": instance_id, "b_node": node_id, "b_fence": attempt}
    return conn.execute(_CLAIM, {**params, "b_worker": worker_id, "b_now": now}).rowcount == 1


def finish_node(
    conn: Connection,
    row_id: int,
    attempt: int,
    target: NodeStatus,
    output: Any,
    now: datetime,
    source: NodeStatus = NodeStatus.RUNNING,
) -> bool:
    """running (or a wait's or sleep's `waiting`) -> completed/skipped with its output, fenced on `attempt`;
    whether this call won."""
    params = {"b_row": row_id, "b_fence": attempt, "b_output": output, "b_now": now}
    return conn.execute(_FINISH[source, target], params).rowcount == 1


def queue_released(
    conn: Connection, ids: list[int], now: datetime, *, while_running: str | None = None
) -> int:
    """pending -> queued (next attempt) for successors whose last dependency just finished, counting
    that dependency done; returns how many moved. With `while_running` (the instance id), only while
    that instance runs: a released node is to be sent at once, which a paused instance must not get."""
    if while_running is None:
        return conn.execute(_RELEASE, {"b_ids": ids, "b_now": now}).rowcount
    params = {"b_ids": ids, "b_now": now, "b_instance": while_running}
    return conn.execute(_RELEASE_WHILE_RUNNING, params).rowcount
