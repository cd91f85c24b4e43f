"""Resending the `run_node` message of a queued node when that message is gone, and only then.

The sweep sees a node's row, not its message. A node may sit `queued` long for two reasons: its
message waits behind others on a busy queue, or its message is gone (a crash between the commit and
the send, a broker that restarted empty, a message taken by a worker that died before its claim).
A copy of a waiting message only lengthens the queue: it is delivered, fails its claim and is acked,
and behind it the queue grows instead of draining. Hence the rule (docs/recovery.md):

- a node is a candidate once its message was sent (queued, due after a retry delay, or last resent)
  at least `window` seconds ago;
- a candidate is resent only while the broker counts no message waiting on its queue. While any
  message waits there, the node's may be one of them. With none waiting, a node left unclaimed for a
  window has no message on its way: a delivered message is claimed at once, and one held by a worker
  that died waits out the visibility timeout, as good as lost;
- every copy is recorded on the row (`resends`, `resent_at`). The next copy for the same queueing
  waits `window` x 2^copies after the last one (at most 2^MAX_DOUBLINGS windows), so a node never has
  two copies sent within one window, and one whose copies keep vanishing backs off;
- when the broker cannot count (a transport without counts, an error), the sweep resends blind, at
  most BLIND_PER_QUEUE nodes of a queue per sweep, under the same backoff: a backlog then grows by a
  bounded trickle, never by its own size.

The count comes from a `QueueCounter` the edge passes in (`workers/broker_probe.py`): the core knows
no broker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, case, or_, select, update

from orchestrator import catalog, logs
from orchestrator.models import InstanceRow, NodeRow, utcnow
from orchestrator.outcomes import Dispatch, QueuedNode, dispatch_for
from orchestrator.scheduling import QUEUED_NODE
from orchestrator.states import InstanceStatus as I
from orchestrator.states import NodeStatus as N

log = logging.getLogger(__name__)

# Messages waiting on each of these queues, as the broker counts them (ready, not yet delivered);
# None for a queue whose count the broker cannot give.
QueueCounter = Callable[[Collection[str]], Mapping[str, "int | None"]]

MAX_DOUBLINGS = 5  # the wait between copies stops growing at 32 windows
BLIND_PER_QUEUE = 10  # copies per queue and sweep when the broker cannot count


def resend_lost(
    engine: Engine, window: float, count_waiting: QueueCounter | None, limit: int
) -> list[Dispatch]:
    """Record and return a copy of the message of each queued node (of a running instance) whose
    message is gone by the rule above; at most `limit` per call."""
    now = utcnow()  # one clock for the call: the copies recorded here are found again by it
    due = _due(now, window)
    queues = _queues_with_candidates(engine, due)
    if not queues:
        return []
    waiting = _count(count_waiting, queues)
    ids = _pick(engine, due, waiting, limit)
    return _resend(engine, ids, due, now, waiting) if ids else []


def _first_copy() -> ColumnElement[bool]:
    """No copy sent for the current queueing yet (a copy sent before it belongs to an older one)."""
    return or_(NodeRow.resent_at.is_(None), NodeRow.resent_at < NodeRow.queued_at)


def _due(now: datetime, window: float) -> tuple[ColumnElement[bool], ...]:
    """Queued nodes whose message (first, after a retry delay, or the last copy) went out long enough
    ago for the next copy: one window for the first copy, doubling with each copy sent."""
    sent_before = now - timedelta(seconds=window)

    def last_copy_before(copies: int) -> datetime:
        return now - timedelta(seconds=window * 2 ** min(copies, MAX_DOUBLINGS))

    later = [
        and_(NodeRow.resends == copies, NodeRow.resent_at < last_copy_before(copies))
        for copies in range(1, MAX_DOUBLINGS)
    ]
    later.append(and_(NodeRow.resends >= MAX_DOUBLINGS, NodeRow.resent_at < last_copy_before(MAX_DOUBLINGS)))
    return (
        NodeRow.status == N.QUEUED.value,
        # a node waiting for a limit's slot has no message to lose (`admission.py` sends it)
        or_(NodeRow.limit_wait.is_(None), NodeRow.admitted_attempt == NodeRow.attempt),
        NodeRow.queued_at < sent_before,
        or_(NodeRow.not_before.is_(None), NodeRow.not_before < sent_before),
        or_(_first_copy(), *later),
    )


def _of_running_instances(query: Any) -> Any:
    return query.join(InstanceRow, InstanceRow.id == NodeRow.instance_id).where(
        InstanceRow.status == I.RUNNING.value
    )


def _queues_with_candidates(engine: Engine, due: tuple[ColumnElement[bool], ...]) -> list[str]:
    with engine.connect() as conn:
        query = _of_running_instances(select(NodeRow.queue).distinct()).where(*due)
        return sorted(conn.execute(query).scalars())


def _count(count_waiting: QueueCounter | None, queues: list[str]) -> dict[str, int | None]:
    if count_waiting is None:
        return dict.fromkeys(queues)
    try:
        counted = count_waiting(queues)
    except Exception:
        log.warning("counting the messages waiting on %s failed; resending blind", queues, exc_info=True)
        return dict.fromkeys(queues)
    return {queue: counted.get(queue) for queue in queues}


def _pick(
    engine: Engine, due: tuple[ColumnElement[bool], ...], waiting: dict[str, int | None], limit: int
) -> list[int]:
    """Ids to resend: candidates of queues with nothing waiting, and a few of queues not counted."""
    empty = [queue for queue, count in waiting.items() if count == 0]
    blind = [queue for queue, count in waiting.items() if count is None]
    for queue, count in waiting.items():
        if count:
            log.info("recovery: %d messages wait on queue %s; its queued nodes are not resent", count, queue)
    if blind:
        log.warning(
            "recovery: the broker cannot count the messages on %s; resending at most %d per queue",
            ", ".join(blind),
            BLIND_PER_QUEUE,
        )
    oldest = _of_running_instances(select(NodeRow.id)).where(*due).order_by(NodeRow.queued_at)
    ids: list[int] = []
    with engine.connect() as conn:
        if empty:
            ids += conn.execute(oldest.where(NodeRow.queue.in_(empty)).limit(limit)).scalars()
        for queue in blind:
            if len(ids) >= limit:
                break
            room = min(BLIND_PER_QUEUE, limit - len(ids))
            ids += conn.execute(oldest.where(NodeRow.queue == queue).limit(room)).scalars()
    return ids


def _resend(
    engine: Engine,
    ids: list[int],
    due: tuple[ColumnElement[bool], ...],
    now: datetime,
    waiting: dict[str, int | None],
) -> list[Dispatch]:
    """Record one more copy of each node still due (a compare-and-set: of two sweeps, one records it)
    and return the messages to send, with a line in each instance's log."""
    with engine.begin() as conn:
        # `resends` first: MySQL evaluates SET left to right, and the CASE must see the old `resent_at`
        conn.execute(
            update(NodeRow)
            .where(NodeRow.id.in_(ids), *due)
            .ordered_values(
                (NodeRow.resends, case((_first_copy(), 1), else_=NodeRow.resends + 1)),
                (NodeRow.resent_at, now),
            )
        )
        rows = conn.execute(
            select(
                *QUEUED_NODE,
                NodeRow.resends,
                InstanceRow.priority,
                InstanceRow.workflow_name,
                InstanceRow.definition_id,
            )
            .join(InstanceRow, InstanceRow.id == NodeRow.instance_id)
            .where(NodeRow.id.in_(ids), NodeRow.status == N.QUEUED.value, NodeRow.resent_at == now)
        ).all()
        logs.write(conn, *(_line(row, waiting[row.queue]) for row in rows))
        width = len(QUEUED_NODE)
        return [
            dispatch_for(
                r, catalog.load_definition(engine, r.definition_id, conn), QueuedNode._make(r[:width])
            )
            for r in rows
        ]


def _line(row: Any, waiting: int | None) -> logs.LogEntry:
    why = "the broker cannot count its queue" if waiting is None else f"nothing waits on queue {row.queue}"
    return logs.LogEntry(
        row.instance_id,
        f"node message presumed lost ({why}); attempt {row.attempt} resent, copy {row.resends}",
        level="warning",
        node_id=row.node_id,
        attempt=row.attempt,
        details={"status": "queued", "queue": row.queue, "waiting": waiting, "copy": row.resends},
    )
