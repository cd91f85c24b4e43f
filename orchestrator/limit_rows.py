"""The `limits` rows that admissions lock, the node rows a limit counts, and the order in which
waiting work is let through.

Each limit in use has one row (kind, name): every admission under it locks that row first, so
admissions decide one at a time across every process; a rate's row also holds its bucket. Waiting
work goes in the order of its instance's priority, then FIFO.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, case, func, insert, or_, select, update

from orchestrator.limits import Gate
from orchestrator.models import InstanceRow, LimitRow, NodeRow, utcnow
from orchestrator.states import NodeStatus as N

RANK = {"critical": 0, "high": 1, "normal": 2, "low": 3}
PRIORITY_ORDER = case(RANK, value=InstanceRow.priority, else_=2)


def lock(conn: Connection, kind: str, name: str, value: str, *, read: bool = True) -> float | None:
    """Lock the limit's row (made on first use) for the rest of the transaction; its bucket's `tat`
    (read only if `read`: a concurrency limit has none)."""
    now = utcnow()
    where = (LimitRow.kind == kind, LimitRow.name == name)
    touch = update(LimitRow).where(*where).values(value=value, updated_at=now)
    if conn.execute(touch).rowcount == 0:
        ignore = "OR IGNORE" if conn.dialect.name == "sqlite" else "IGNORE"
        row = {"kind": kind, "name": name, "value": value, "updated_at": now}
        conn.execute(insert(LimitRow).prefix_with(ignore).values(**row))
        conn.execute(touch)
    return conn.execute(select(LimitRow.tat).where(*where)).scalar() if read else None


# a node's current attempt was let through (its message sent): it holds a slot until it ends
ADMITTED = NodeRow.admitted_attempt == NodeRow.attempt
NOT_ADMITTED = or_(NodeRow.admitted_attempt.is_(None), NodeRow.admitted_attempt != NodeRow.attempt)
# a running attempt cancelled under a limit keeps its slot, heartbeat kept, until it stops
# (`slot_holders`: its worker lets go at the attempt's end, or the sweep once the heartbeat expires)
KEPT_BY_CANCEL = and_(NodeRow.status == N.CANCELLED.value, ADMITTED, NodeRow.heartbeat_at.is_not(None))
HOLDING = or_(
    NodeRow.status == N.RUNNING.value, and_(NodeRow.status == N.QUEUED.value, ADMITTED), KEPT_BY_CANCEL
)


def under(gate: Gate) -> Any:
    """The node rows a limit counts (its instance row joined)."""
    kind, _, rest = gate.name.partition(":")
    if kind == "executor":
        return NodeRow.executor == rest
    workflow, _, node_id = rest.partition("/")
    if node_id.endswith("[]"):  # a map's items
        return and_(
            InstanceRow.workflow_name == workflow, NodeRow.node_id.startswith(node_id[:-1], autoescape=True)
        )
    return and_(InstanceRow.workflow_name == workflow, NodeRow.node_id == node_id)


def in_use(conn: Connection, gate: Gate) -> int:
    query = (
        select(func.count())
        .select_from(NodeRow)
        .join(InstanceRow, InstanceRow.id == NodeRow.instance_id)
        .where(under(gate), HOLDING)
    )
    return int(conn.execute(query).scalar_one())
