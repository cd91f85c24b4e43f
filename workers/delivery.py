"""The Celery settings that make delivery safe (docs/recovery.md), in one place: the product's app
uses them, and so does the benchmark's raw Celery baseline, so the two compare like with like."""

from __future__ import annotations

from typing import Any

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
    "broker_transport_options": {
        # far above any node's duration: recovery is the sweep's job, not redelivery's
        "visibility_timeout": 12 * 3600,
        # Redis emulates priorities with one list per step; 0 is served first
        "priority_steps": [0, 3, 6, 9],
        "sep": ":",
        "queue_order_strategy": "priority",
    },
}
