"""How many messages wait on a queue, as the broker counts them: what the recovery sweep needs to tell
a queued node's lost message from one that waits behind others (orchestrator/resends.py).

The count is kombu's passive `queue_declare`, the same call on every transport: on Redis the lengths
of the queue's lists, one per priority step (`default`, `default:3`, ... with our `sep`); on AMQP the
queue's `message_count`. Both count messages ready for delivery, not those a worker holds unacked:
a held message is claimed at once, or belongs to a worker that died with it. Other kombu transports
answer 0 when they cannot count, so only those known to count are asked; for the others (and on an
error) the answer is None, and the sweep resends blind, a few at a time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection
from typing import Any

from workers.app import app

log = logging.getLogger(__name__)

COUNTING_TRANSPORTS = frozenset({"redis", "amqp"})  # kombu `driver_type`s whose counts are real


def count_waiting(queues: Collection[str]) -> dict[str, int | None]:
    """Messages waiting for delivery on each queue; None where the broker cannot tell."""
    with app.connection_for_read() as conn:
        if conn.transport.driver_type not in COUNTING_TRANSPORTS:
            return dict.fromkeys(queues)
        return {queue: _waiting(conn, queue) for queue in queues}


def _waiting(conn: Any, queue: str) -> int | None:
    channel = conn.channel()  # a channel of its own: on AMQP a queue not found closes it
    try:
        return int(channel.queue_declare(queue=queue, passive=True).message_count)
    except Exception as exc:
        # not found: Redis drops a list once it is empty, and AMQP drops what no queue is bound to
        if str(getattr(exc, "reply_code", "")) == "404":
            return 0
        log.warning("could not count the messages waiting on queue %s", queue, exc_info=True)
        return None
    finally:
        with contextlib.suppress(Exception):
            channel.close()
