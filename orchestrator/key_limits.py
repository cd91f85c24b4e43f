"""A definition's concurrency key: at most `limit` running instances share one value of the key.

`"concurrency": {"key": "${input.customerId}", "limit": 1}` renders the key when the instance is
created (`key:<workflow>:<value>`, kept on its row with the limit). The instances with that key that
are `running` or `paused` hold its slots. A pending one starts (`may_start`, in `scheduling.start`'s
transaction, the key's row locked) only while a slot is free and no instance ahead of it (priority,
then creation) waits for one; the others stay `pending` (`waitingFor`). The end of one sends the
`schedule` of the next (`next_for_key`); the sweep's start of pending instances covers a lost one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, or_, select

from orchestrator.db import retrying
from orchestrator.limit_rows import PRIORITY_ORDER, lock
from orchestrator.limits import CONCURRENCY
from orchestrator.models import InstanceRow, LimitRow, utcnow
from orchestrator.outcomes import StartInstance
from orchestrator.states import InstanceStatus as I


def in_use(conn: Connection, key: str) -> int:
    query = select(func.count()).where(
        InstanceRow.concurrency_key == key, InstanceRow.status.in_([I.RUNNING.value, I.PAUSED.value])
    )
    return int(conn.execute(query).scalar_one())


def waiting(key: str, now: datetime) -> Any:
    """Pending instances with this key whose start was asked for and is due, in admission order."""
    return (
        select(InstanceRow.id, InstanceRow.priority, InstanceRow.created_at)
        .where(
            InstanceRow.concurrency_key == key,
            InstanceRow.status == I.PENDING.value,
            InstanceRow.start_requested_at.is_not(None),
            or_(InstanceRow.start_at.is_(None), InstanceRow.start_at <= now),
        )
        .order_by(PRIORITY_ORDER, InstanceRow.created_at, InstanceRow.id)
    )


def may_start(conn: Connection, instance_id: str, inst: Any, now: datetime) -> bool:
    """Whether the pending instance may start under its concurrency key (in the start's transaction,
    with the key's row locked until it commits): fewer than the limit run, counting those that wait
    ahead of it."""
    limit = inst.concurrency_limit or 1
    lock(conn, CONCURRENCY, inst.concurrency_key, str(limit), read=False)
    return not held_back(conn, instance_id, inst.concurrency_key, limit, now)


def held_back(conn: Connection, instance_id: str, key: str, limit: int, now: datetime) -> bool:
    """Whether a pending instance with this key must wait: no slot free, or every free one is for
    instances ahead of it (priority, then creation)."""
    free = limit - in_use(conn, key)
    if free <= 0:
        return True
    ahead = [row.id for row in conn.execute(waiting(key, now).limit(free))]
    return instance_id not in ahead and len(ahead) >= free


@retrying()
def next_for_key(engine: Engine, key: str) -> list[StartInstance]:
    """After an instance with this key ended: the pending ones that may start now (their `schedule`
    messages; each start checks again under the lock)."""
    now = utcnow()
    with engine.begin() as conn:
        limit = conn.execute(
            select(LimitRow.value).where(LimitRow.kind == CONCURRENCY, LimitRow.name == key)
        ).scalar()
        if limit is None:
            return []
        free = int(limit) - in_use(conn, key)
        if free <= 0:
            return []
        rows = conn.execute(waiting(key, now).limit(free)).all()
    return [StartInstance(row.id, row.priority) for row in rows]


def waiting_for(engine: Engine, row: Any) -> dict[str, Any] | None:
    """The `waitingFor` of an instance (its row): a pending one whose start was asked for and is due,
    held back by its concurrency key."""
    now = utcnow()
    if row.status != I.PENDING.value or row.concurrency_key is None or row.start_requested_at is None:
        return None
    if row.start_at is not None and row.start_at > now:
        return None
    with engine.connect() as conn:
        if not held_back(conn, row.id, row.concurrency_key, row.concurrency_limit or 1, now):
            return None
    return {"limit": row.concurrency_key, "kind": CONCURRENCY}
