"""A definition's concurrency key: at most `limit` running instances share one value of the key.

`"concurrency": {"key": "${input.customerId}", "limit": 1}` renders the key when the instance is
created (`key:<workflow>:<value>`, kept on its row with the limit). The instances with that key that
are `running` or `paused` hold its slots. A pending one starts (`may_start`, in `scheduling.start`'s
transaction, the key's row locked) only while a slot is free and no instance ahead of it (priority,
then creation) waits for one; the others stay `pending` (`waitingFor`). The end of one sends the
`schedule` of the next (`next_for_key`); the sweep's start of pending instances covers a lost one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, exists, func, or_, select
from sqlalchemy.orm import aliased

from orchestrator.db import retrying
from orchestrator.limit_rows import PRIORITY_ORDER, lock
from orchestrator.limits import CONCURRENCY
from orchestrator.models import InstanceRow, LimitRow, utcnow
from orchestrator.outcomes import Outcome, StartInstance
from orchestrator.states import InstanceStatus as I

log = logging.getLogger(__name__)

KEYS_PER_SWEEP = 200  # keys with a free slot one sweep starts instances of; the rest are next sweep's
PRUNE_PER_SWEEP = 500  # idle key rows one sweep deletes; the rest are next sweep's


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


def start_free(engine: Engine, older_than: float, start: Callable[[Engine, str], Outcome]) -> list[Outcome]:
    """The sweep's start of instances with a concurrency key: for each key with a free slot and a
    pending instance whose start was asked for (`older_than` s ago, or its startAt has come), start
    the next ones (`start`: `scheduling.start`, which checks again under the key's lock). It covers
    a lost `schedule` and a lost end of the one ahead. Keys whose slots are all taken are not read,
    so instances held back for them (any number) hold back nothing else."""
    now = utcnow()
    cutoff = now - timedelta(seconds=older_than)
    other = aliased(InstanceRow)
    used = (
        select(func.count())
        .where(
            other.concurrency_key == InstanceRow.concurrency_key,
            other.status.in_([I.RUNNING.value, I.PAUSED.value]),
        )
        .scalar_subquery()
    )
    query = (
        select(InstanceRow.concurrency_key)
        .where(
            InstanceRow.status == I.PENDING.value,
            InstanceRow.concurrency_key.is_not(None),
            or_(
                InstanceRow.start_requested_at < cutoff,
                and_(
                    InstanceRow.start_at.is_not(None), InstanceRow.start_requested_at == InstanceRow.start_at
                ),
            ),
            or_(InstanceRow.start_at.is_(None), InstanceRow.start_at <= now),
            used < func.coalesce(InstanceRow.concurrency_limit, 1),
        )
        .distinct()
        .limit(KEYS_PER_SWEEP)
    )
    with engine.connect() as conn:
        keys = [key for key in conn.execute(query).scalars() if key is not None]
    outcomes: list[Outcome] = []
    for key in keys:
        try:
            for instance_id in _next_ids(engine, key, now):
                outcomes.append(start(engine, instance_id))
        except Exception:
            log.exception("starting the next instances of concurrency key %s failed; the others go on", key)
    return outcomes


def _next_ids(engine: Engine, key: str, now: datetime) -> list[str]:
    with engine.connect() as conn:
        head = conn.execute(waiting(key, now).add_columns(InstanceRow.concurrency_limit).limit(1)).first()
        if head is None:
            return []
        free = (head.concurrency_limit or 1) - in_use(conn, key)
        return [] if free <= 0 else [row.id for row in conn.execute(waiting(key, now).limit(free))]


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


def held() -> Any:
    """Whether a limit row's key is held or waited for: an instance with it is pending, running or
    paused (a row without one is idle: `prune_idle` deletes it, `/limits` does not list it)."""
    return exists().where(
        InstanceRow.concurrency_key == LimitRow.name,
        InstanceRow.status.in_([I.PENDING.value, I.RUNNING.value, I.PAUSED.value]),
    )


@retrying()
def prune_idle(engine: Engine, at_most: int = PRUNE_PER_SWEEP) -> int:
    """Delete up to `at_most` rows of keys that no instance holds or waits for (none pending, running
    or paused with the key), so that `/limits` and `/metrics` do not grow with every key ever used;
    the number deleted. A key used again gets its row back at its next lock (`limit_rows.lock`); the
    row only serialises admissions, the count is the instances'."""
    idle = (LimitRow.kind == CONCURRENCY, LimitRow.name.startswith("key:", autoescape=True), ~held())
    with engine.begin() as conn:
        names = list(conn.execute(select(LimitRow.name).where(*idle).limit(at_most)).scalars())
        if not names:
            return 0
        # checked again as it deletes: a key taken meanwhile keeps its row
        return conn.execute(delete(LimitRow).where(LimitRow.name.in_(names), *idle)).rowcount
