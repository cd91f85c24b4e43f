"""Delivering an instance's end to its `callbackUrl`, as stored state rather than only messages.

An instance with a callback URL that ends gets `callback_state = pending`, due at once (in the
transaction that ends it; a retry of the instance clears it, and its next end starts afresh). Each
`notify` message names the attempts it expects made (`seen`): taking an attempt is a compare-and-set
on that count, so copies of a message (a resend racing a slow one, a redelivery) make one attempt,
not one each. Taking it pushes the due time past the attempt's planned retry. A delivery ends
`delivered`, or `failed` once `MAX_ATTEMPTS` were made, however they ended. The `notify` task makes
the attempts and schedules its retries; the recovery sweep resends `notify` for a delivery left
overdue, its message lost with the broker or held by a worker that was killed. Delivery is at least
once: a receiver may see a callback twice.

A delivery is a POST to the stored URL (credentials and all) through the egress policy; redirects
are not followed (a 3xx is a failed attempt). A URL the policy denies ends the delivery `failed` at
once, with an `EGRESS_DENIED` line in the instance's execution log: another attempt would be denied
too. Whatever is shown or logged of the URL is redacted (`orchestrator/redaction.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update

from orchestrator import logs, outbound
from orchestrator.db import retrying
from orchestrator.egress import EgressPolicy
from orchestrator.errors import EgressDenied
from orchestrator.models import InstanceRow, utcnow
from orchestrator.redaction import redact_text, redact_url
from orchestrator.states import FINISHED_INSTANCE

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
MAX_ATTEMPTS = 9  # the first and eight retries
REQUEST_TIMEOUT_S = 10.0
_ENDED = [s.value for s in FINISHED_INSTANCE]


def retry_delay(attempt: int) -> float:
    """Seconds after attempt `attempt` (1-based) fails before the next: 1, 2, 4 ... 128."""
    return 2.0 ** (attempt - 1)


def on_end(callback_url: str | None, now: datetime) -> dict[str, Any]:
    """The instance columns to set with its end: a delivery due at once, if it has a callback URL."""
    if not callback_url:
        return {}
    return {"callback_state": PENDING, "callback_attempts": 0, "callback_due_at": now}


CLEARED: dict[str, Any] = {"callback_state": None, "callback_attempts": 0, "callback_due_at": None}


@dataclass(frozen=True)
class Attempt:
    number: int  # 1-based
    ended_at: datetime  # the end being delivered: a later end (after a retry) is another delivery
    url: str = ""  # where to deliver, as stored: with its credentials, never to be shown or logged


_STATE = select(
    InstanceRow.callback_state,
    InstanceRow.callback_attempts,
    InstanceRow.callback_url,
    InstanceRow.status,
    InstanceRow.finished_at,
).where(InstanceRow.id == bindparam("b_id"))
_TAKE = (
    update(InstanceRow)
    .where(
        InstanceRow.id == bindparam("b_id"),
        InstanceRow.callback_state == PENDING,
        InstanceRow.callback_attempts == bindparam("b_seen"),
        InstanceRow.status.in_(_ENDED),
    )
    .values(callback_attempts=InstanceRow.callback_attempts + 1, callback_due_at=bindparam("b_due"))
)


@retrying()
def take_attempt(engine: Engine, instance_id: str, seen: int | None) -> Attempt | None:
    """Take the next attempt of a pending delivery, if `seen` attempts were made so far; None when
    there is none to make: delivered, given up, not ended, or another copy of the message took it.

    `seen` None is a message from before deliveries were stored: it goes by the count it reads, and
    takes over an ended instance with no stored delivery (one that ended before the upgrade)."""
    with engine.begin() as conn:
        row = conn.execute(_STATE, {"b_id": instance_id}).first()
        if row is None or row.status not in _ENDED or not row.callback_url:
            return None
        if row.callback_state is None and seen is None:
            took_over = conn.execute(
                update(InstanceRow)
                .where(InstanceRow.id == instance_id, InstanceRow.callback_state.is_(None))
                .values(on_end(row.callback_url, utcnow()))
            )
            if took_over.rowcount != 1:
                return None  # another copy of the message took it over, and makes the attempt
            row = conn.execute(_STATE, {"b_id": instance_id}).one()
            seen = 0
        seen = row.callback_attempts if seen is None else seen
        if row.callback_state != PENDING or seen != row.callback_attempts:
            return None
        if seen >= MAX_ATTEMPTS:  # the attempts ran out without a settled answer (killed, crashed)
            _settle(conn, instance_id, Attempt(seen, row.finished_at), FAILED)
            return None
        # due again once this attempt and the retry it would schedule have had their time
        due = utcnow() + timedelta(seconds=REQUEST_TIMEOUT_S + retry_delay(seen + 1))
        taken = conn.execute(_TAKE, {"b_id": instance_id, "b_seen": seen, "b_due": due})
        return Attempt(seen + 1, row.finished_at, row.callback_url) if taken.rowcount == 1 else None


@retrying()
def settle(engine: Engine, instance_id: str, attempt: Attempt, state: str) -> None:
    """End the delivery `attempt` belongs to: `delivered`, or `failed` when no attempt is left."""
    with engine.begin() as conn:
        _settle(conn, instance_id, attempt, state)


def _settle(conn: Connection, instance_id: str, attempt: Attempt, state: str) -> None:
    conn.execute(
        update(InstanceRow)
        .where(
            InstanceRow.id == instance_id,
            InstanceRow.callback_state == PENDING,
            InstanceRow.callback_attempts == attempt.number,
            InstanceRow.finished_at == attempt.ended_at,
        )
        .values(callback_state=state, callback_due_at=None)
    )


class DeliveryFailed(Exception):
    """An attempt that did not deliver; its message shows the URL redacted."""


def post(url: str, body: dict[str, Any], egress: EgressPolicy) -> None:
    """POST `body` to `url`, judged by `egress`, without following redirects. Raises EgressDenied
    when the policy denies the connection, DeliveryFailed when it was not answered with a 2xx."""
    shown = redact_url(url)
    try:
        with outbound.session(egress) as session:
            response = session.post(url, json=body, timeout=REQUEST_TIMEOUT_S, allow_redirects=False)
    except EgressDenied:
        raise
    except Exception as exc:  # refused, timed out, not a URL at all: each is a failed attempt
        raise DeliveryFailed(f"POST {shown}: {type(exc).__name__}: {redact_text(str(exc))}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"POST {shown} answered {response.status_code}")


@retrying()
def deny(engine: Engine, instance_id: str, attempt: Attempt, denied: EgressDenied) -> None:
    """End the delivery `failed` because the egress policy denied its URL, and say so in the
    instance's execution log (code `EGRESS_DENIED`, the URL redacted)."""
    shown = redact_url(attempt.url)
    with engine.begin() as conn:
        _settle(conn, instance_id, attempt, FAILED)
        entry = logs.LogEntry(
            instance_id,
            f"callback to {shown} not delivered: {denied.message}",
            level="error",
            details={"code": denied.code, "callbackUrl": shown},
        )
        logs.write(conn, entry)


@dataclass(frozen=True)
class Overdue:
    instance_id: str
    seen: int  # attempts made when it was found overdue: what the resent message expects


def overdue(engine: Engine, older_than: float, limit: int) -> list[Overdue]:
    """Ended instances whose pending delivery has been due for `older_than` seconds: their `notify`
    message was lost. Each one's due time restarts (a compare-and-set: of two sweeps, one resends),
    so it is resent once per `older_than`."""
    now = utcnow()
    cutoff = now - timedelta(seconds=older_than)
    found = []
    with engine.begin() as conn:
        for row in _overdue_rows(conn, cutoff, limit):
            restarted = conn.execute(
                update(InstanceRow)
                .where(
                    InstanceRow.id == row.id,
                    InstanceRow.callback_state == PENDING,
                    InstanceRow.callback_attempts == row.callback_attempts,
                    InstanceRow.callback_due_at < cutoff,
                )
                .values(callback_due_at=now)
            )
            if restarted.rowcount == 1:
                found.append(Overdue(row.id, row.callback_attempts))
    return found


def _overdue_rows(conn: Connection, cutoff: datetime, limit: int) -> list[Any]:
    return list(
        conn.execute(
            select(InstanceRow.id, InstanceRow.callback_attempts)
            .where(
                InstanceRow.callback_state == PENDING,
                InstanceRow.callback_due_at < cutoff,
                InstanceRow.status.in_(_ENDED),
            )
            .limit(limit)
        ).all()
    )
