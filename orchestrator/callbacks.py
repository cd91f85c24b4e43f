"""Delivering an instance's end to its `callbackUrl`, as stored state rather than only messages.

An instance with a callback URL that ends gets `callback_state = pending`, due at once (in the
transaction that ends it). Each attempt is taken with a compare-and-set on the attempts made, which
pushes the due time past the attempt's planned retry; a delivery ends `delivered`, or `failed` after
`MAX_ATTEMPTS`. The `notify` task makes the attempts and schedules its own retries; the recovery
sweep resends `notify` for a delivery left overdue, whose message was lost with the broker or held
by a worker that was killed. Delivery is at least once: a receiver may see a callback twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update

from orchestrator.db import retrying
from orchestrator.models import InstanceRow, utcnow
from orchestrator.states import FINISHED_INSTANCE

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
MAX_ATTEMPTS = 9  # the first and eight retries
MAX_DELAY_S = 600.0
REQUEST_TIMEOUT_S = 10.0


def retry_delay(attempt: int) -> float:
    """Seconds after attempt `attempt` (1-based) fails before the next: 1, 2, 4 ... up to 10 min."""
    return min(MAX_DELAY_S, 2.0 ** (attempt - 1))


def on_end(callback_url: str | None, now: datetime) -> dict[str, Any]:
    """The instance columns to set with its end: a delivery due at once, if it has a callback URL."""
    if not callback_url:
        return {}
    return {"callback_state": PENDING, "callback_attempts": 0, "callback_due_at": now}


_TAKE = (
    update(InstanceRow)
    .where(
        InstanceRow.id == bindparam("b_id"),
        InstanceRow.callback_state == PENDING,
        InstanceRow.callback_attempts == bindparam("b_seen"),
    )
    .values(callback_attempts=InstanceRow.callback_attempts + 1, callback_due_at=bindparam("b_due"))
)


@retrying()
def take_attempt(engine: Engine, instance_id: str) -> int | None:
    """Take the next attempt of a pending delivery (1-based), or None when there is none to make:
    delivered, given up, never due, or taken meanwhile by a duplicate `notify`."""
    with engine.begin() as conn:
        row = conn.execute(
            select(InstanceRow.callback_state, InstanceRow.callback_attempts, InstanceRow.status).where(
                InstanceRow.id == instance_id
            )
        ).first()
        if row is None or row.callback_state != PENDING or row.status not in FINISHED_INSTANCE:
            return None
        attempt = row.callback_attempts + 1
        # due again once this attempt and the retry it would schedule have had their time
        due = utcnow() + timedelta(seconds=REQUEST_TIMEOUT_S + retry_delay(attempt))
        taken = conn.execute(_TAKE, {"b_id": instance_id, "b_seen": row.callback_attempts, "b_due": due})
        return attempt if taken.rowcount == 1 else None


@retrying()
def settle(engine: Engine, instance_id: str, state: str) -> None:
    """End a pending delivery: `delivered`, or `failed` when no attempt is left."""
    with engine.begin() as conn:
        conn.execute(
            update(InstanceRow)
            .where(InstanceRow.id == instance_id, InstanceRow.callback_state == PENDING)
            .values(callback_state=state, callback_due_at=None)
        )


def overdue(engine: Engine, older_than: float, limit: int) -> list[str]:
    """Ended instances whose pending delivery has been due for `older_than` seconds: their `notify`
    message was lost. Their due time restarts, so each is resent once per `older_than`."""
    now = utcnow()
    with engine.begin() as conn:
        ids = _overdue_ids(conn, now - timedelta(seconds=older_than), limit)
        if ids:
            conn.execute(update(InstanceRow).where(InstanceRow.id.in_(ids)).values(callback_due_at=now))
    return ids


def _overdue_ids(conn: Connection, cutoff: datetime, limit: int) -> list[str]:
    return list(
        conn.execute(
            select(InstanceRow.id)
            .where(
                InstanceRow.callback_state == PENDING,
                InstanceRow.callback_due_at < cutoff,
                InstanceRow.status.in_([s.value for s in FINISHED_INSTANCE]),
            )
            .limit(limit)
        ).scalars()
    )
