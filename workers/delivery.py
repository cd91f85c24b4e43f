"""The Celery settings that make delivery safe (docs/recovery.md), in one place: the product's app
uses them, and so does the benchmark's raw Celery baseline, so the two compare like with like.

The same settings serve Redis and RabbitMQ: each transport reads the options it knows and ignores
the others (kombu's Redis channel takes the visibility timeout and priority steps; the AMQP
transport `confirm_publish`; queue arguments such as `x-max-priority` mean nothing to Redis)."""

from __future__ import annotations

from typing import Any

# Highest message priority on RabbitMQ: a classic queue declared with `x-max-priority` keeps one
# sub-queue per level, so 9 (0..9) spans the four instance priorities with room, as on Redis.
AMQP_MAX_PRIORITY = 9
# Instance priority -> Celery message priority. Redis serves 0 first (kombu's priority steps);
# RabbitMQ serves the highest first, so its table is the reverse (docs/design.md).
REDIS_PRIORITY = {"critical": 0, "high": 3, "normal": 6, "low": 9}
AMQP_PRIORITY = {"critical": 9, "high": 6, "normal": 3, "low": 0}

DELIVERY_SETTINGS: dict[str, Any] = {
    "task_serializer": "json",
    "accept_content": ["json"],
    "result_serializer": "json",
    "task_ignore_result": True,
    # a message is only gone once its node is recorded; an idle worker takes the next one
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "worker_cancel_long_running_tasks_on_connection_loss": True,
    "broker_connection_retry_on_startup": True,
    # RabbitMQ: every queue Celery declares (ours and any it creates on demand) is a classic queue
    # with priorities; quorum queues of RabbitMQ < 4 have none (docs/recovery.md)
    "task_queue_max_priority": AMQP_MAX_PRIORITY,
    "broker_transport_options": {
        # Redis: far above any node's duration: recovery is the sweep's job, not redelivery's
        "visibility_timeout": 12 * 3600,
        # Redis emulates priorities with one list per step; 0 is served first
        "priority_steps": [0, 3, 6, 9],
        "sep": ":",
        "queue_order_strategy": "priority",
        # RabbitMQ: a publish returns once the broker has the message (publisher confirms), so a
        # node recorded as queued is not lost in a socket buffer when the broker goes down
        "confirm_publish": True,
    },
}


def is_amqp(broker_url: str) -> bool:
    return broker_url.startswith(("amqp://", "amqps://", "pyamqp://"))


def priority_table(broker_url: str) -> dict[str, int]:
    return AMQP_PRIORITY if is_amqp(broker_url) else REDIS_PRIORITY
