"""Sending what the core decided: one `run_node` message per Dispatch, sent after the commit."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from orchestrator.outcomes import Dispatch, Wakeup
from workers.app import CONTROL_QUEUE, app
from workers.delivery import priority_table

log = logging.getLogger(__name__)


def message_priority(priority: str) -> int:
    """Celery message priority per instance priority (workers/delivery.py: Redis serves 0 first,
    RabbitMQ the highest)."""
    table = priority_table(str(app.conf.broker_url or ""))
    return table.get(priority, table["normal"])


def task_id(instance_id: str, node_id: str, attempt: int) -> str:
    """Derived from (instance, node, attempt): a resend of the same attempt is the same task."""
    return f"{instance_id}:{node_id}:{attempt}"


def send_nodes(dispatches: Iterable[Dispatch]) -> None:
    """Send one `run_node` message per Dispatch.

    Several messages (a fan-out) go out through kombu's publish batch: one pipelined broker round trip
    per 1,000 instead of one each. A batch that fails is sent again message by message (with Celery's
    usual publish retries); a message sent twice is harmless, as the claim is a compare-and-set.
    """
    batch = list(dispatches)
    if len(batch) <= 1:
        for d in batch:
            _send(d)
        return
    try:
        with contextlib.ExitStack() as stack:
            producer = stack.enter_context(app.producer_or_acquire())
            # kombu < 5.7 and transports without batching publish at once
            stack.enter_context(getattr(producer, "batch", contextlib.nullcontext)())
            for d in batch:
                _send(d, producer)
    except Exception:
        log.warning("sending %d node messages as one batch failed; sending each", len(batch), exc_info=True)
        for d in batch:
            _send(d)


def _send(d: Dispatch, producer: Any = None) -> None:
    options: dict[str, Any] = {}
    facts = d.facts()
    if facts is not None:
        options["kwargs"] = {
            "row": facts.row_id,
            "definition": facts.definition_id,
            "workflow": facts.workflow,
            "priority": facts.priority,
        }
        options["kwargsrepr"] = "{}"  # Flower shows the shadow name and args; these are plumbing
    if d.timeout_s is not None:
        # soft limit: SoftTimeLimitExceeded in the executor fails the attempt; the hard limit is
        # the backstop for an executor that swallows it
        options["soft_time_limit"] = d.timeout_s
        options["time_limit"] = d.timeout_s + 5
    app.send_task(
        "orchestrator.run_node",
        args=(d.instance_id, d.node_id, d.attempt),
        task_id=task_id(d.instance_id, d.node_id, d.attempt),
        queue=d.queue,
        routing_key=d.queue,
        priority=message_priority(d.priority),
        countdown=d.countdown or None,
        shadow=f"{d.workflow}/{d.node_id} [{d.executor or d.node_type}]",
        argsrepr=f"instance={d.instance_id} node={d.node_id} attempt={d.attempt}",
        producer=producer,
        **options,
    )


def send_schedule(instance_id: str, priority: str = "normal", countdown: float | None = None) -> None:
    app.send_task(
        "orchestrator.schedule",
        args=(instance_id,),
        countdown=countdown,
        queue=CONTROL_QUEUE,
        routing_key=CONTROL_QUEUE,
        priority=message_priority(priority),
        argsrepr=f"instance={instance_id}",
    )


def send_wake(wakeup: Wakeup) -> None:
    """`orchestrator.wake` at a sleep node's wake-up time; a lost one only leaves it to the sweep."""
    app.send_task(
        "orchestrator.wake",
        args=(wakeup.instance_id, wakeup.node_id, wakeup.attempt),
        queue=CONTROL_QUEUE,
        routing_key=CONTROL_QUEUE,
        countdown=max(wakeup.delay, 0.0),
        priority=message_priority("critical"),
        argsrepr=f"instance={wakeup.instance_id} node={wakeup.node_id} attempt={wakeup.attempt}",
    )


def send_notify(instance_id: str, seen: int) -> None:
    """An attempt at the instance's callback delivery, expected to follow `seen` attempts
    (`orchestrator.notify`; copies of one message make one attempt between them)."""
    app.send_task(
        "orchestrator.notify",
        args=(instance_id,),
        kwargs={"seen": seen},
        queue=CONTROL_QUEUE,
        routing_key=CONTROL_QUEUE,
        # served before schedule messages, as a message without priority is on Redis; on RabbitMQ
        # one without priority is served last
        priority=message_priority("critical"),
    )
