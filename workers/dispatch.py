"""Sending what the core decided: one `run_node` message per Dispatch, sent after the commit."""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.scheduling import Dispatch
from workers.app import CONTROL_QUEUE, app

# Celery message priority per instance priority. Redis serves 0 first; AMQP serves the highest first.
_REDIS_PRIORITY = {"critical": 0, "high": 3, "normal": 6, "low": 9}
_AMQP_PRIORITY = {"critical": 9, "high": 6, "normal": 3, "low": 0}


def message_priority(priority: str) -> int:
    broker = str(app.conf.broker_url or "")
    table = _AMQP_PRIORITY if broker.startswith(("amqp", "pyamqp")) else _REDIS_PRIORITY
    return table.get(priority, table["normal"])


def task_id(instance_id: str, node_id: str, attempt: int) -> str:
    """Derived from (instance, node, attempt): a resend of the same attempt is the same task."""
    return f"{instance_id}:{node_id}:{attempt}"


def send_nodes(dispatches: Iterable[Dispatch]) -> None:
    for d in dispatches:
        options: dict[str, object] = {}
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
            shadow=f"{d.workflow}/{d.node_id} [{d.executor or 'subworkflow'}]",
            argsrepr=f"instance={d.instance_id} node={d.node_id} attempt={d.attempt}",
            **options,
        )


def send_schedule(instance_id: str, priority: str = "normal") -> None:
    app.send_task(
        "orchestrator.schedule",
        args=(instance_id,),
        queue=CONTROL_QUEUE,
        routing_key=CONTROL_QUEUE,
        priority=message_priority(priority),
        argsrepr=f"instance={instance_id}",
    )
