"""The Celery app: `celery -A workers.app worker` runs nodes, `celery -A workers.app beat` the sweeps.

Settings that make at-least-once execution safe: late acknowledgement and reject-on-worker-loss
(a message is only gone once its node is recorded), prefetch 1 (an idle worker takes the next node,
a busy one does not hoard them), and a visibility timeout far above any node's duration so Redis
does not redeliver a long node behind the recovery sweep's back (docs/recovery.md).
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from orchestrator import executors
from orchestrator.executors import DEFAULT_QUEUE
from workers import shutdown  # noqa: F401  (its shared flag must exist before the pool forks)
from workers.delivery import DELIVERY_SETTINGS, priority_table
from workers.resources import settings

CONTROL_QUEUE = "orchestrator"
# Periodic tasks of the cluster itself (the recovery sweep every few seconds, hourly pruning): they
# send no task events, so Flower's task list and counts hold node attempts and the control tasks of
# instances only (see `task_annotations` below and `workers/observe.py: ReadableAMQP`). A queue of
# their own would not do it: Flower lists tasks from events, whatever their queue.
HOUSEKEEPING_TASKS = ("orchestrator.recover", "orchestrator.prune", "orchestrator.fire_schedules")

executors.load_modules(settings().executor_modules)


def _queues() -> list[Queue]:
    names = [CONTROL_QUEUE, DEFAULT_QUEUE, *executors.domains()]
    return [Queue(name, routing_key=name) for name in dict.fromkeys(names)]


app = Celery(
    "orchestrator",
    broker=settings().broker_url,
    include=[
        "workers.tasks",
        "workers.beat",
        "workers.lifecycle_tasks",
        "workers.membership",
        "workers.limit_watch",
    ],
    amqp="workers.observe:ReadableAMQP",  # readable node task names in Flower (see there)
)
app.conf.update(
    **DELIVERY_SETTINGS,
    task_default_queue=CONTROL_QUEUE,
    task_queues=_queues(),
    task_create_missing_queues=True,
    # task events (sent, received, started, succeeded...) are what Flower shows; ORCH_TASK_EVENTS=0 stops them
    worker_send_task_events=settings().task_events,
    task_send_sent_event=settings().task_events,
    # the worker's own events (received, started, succeeded...) of housekeeping tasks are off; their
    # sent event is dropped by the sender (`ReadableAMQP`). The beat and worker logs and /metrics
    # (recoveries, resends) still show what the sweep did.
    task_annotations={name: {"send_events": False} for name in HOUSEKEEPING_TASKS},
)
if settings().worker_concurrency:
    app.conf.worker_concurrency = settings().worker_concurrency

# Sweeps are served before schedule messages on either broker (0 on Redis, 9 on RabbitMQ); a message
# without priority is served first on Redis but last on RabbitMQ.
_SWEEP_PRIORITY = priority_table(settings().broker_url)["critical"]

# The schedule is by task name, so `celery beat` needs no task module imported to send it.
app.conf.beat_schedule = {
    "recovery-sweep": {
        "task": "orchestrator.recover",
        "schedule": settings().recovery_interval,
        # a sweep that waited longer than one interval is superseded by the next one
        "options": {
            "queue": CONTROL_QUEUE,
            "expires": max(settings().recovery_interval, 1.0),
            "priority": _SWEEP_PRIORITY,
        },
    },
    "schedules": {
        "task": "orchestrator.fire_schedules",
        "schedule": settings().schedule_interval,
        # a pass that waited longer than one interval is superseded by the next one
        "options": {
            "queue": CONTROL_QUEUE,
            "expires": max(settings().schedule_interval, 1.0),
            "priority": _SWEEP_PRIORITY,
        },
    },
    "retention": {
        "task": "orchestrator.prune",
        "schedule": 3600.0,
        "options": {"queue": CONTROL_QUEUE, "expires": 3600.0, "priority": _SWEEP_PRIORITY},
    },
}


def use_broker(url: str) -> None:
    """Point this process's sender at another broker (a test or benchmark process that talks to
    Redis and RabbitMQ in turn); workers and beat take theirs from ORCH_BROKER_URL at start."""
    app.conf.broker_url = url
    app.conf.broker_write_url = None
    app.conf.broker_read_url = None
    # kombu keeps one connection and producer pool per broker (`kombu.pools`), kept open for the
    # next switch back; only the app's references to the current ones are dropped
    app._pool = None
    app.amqp._producer_pool = None


# metrics, log context and JSON logs, wired to Celery's signals (worker, beat and every sender)
from workers import observe  # noqa: E402,F401
