"""The raw Celery baseline: a tiny app with the production worker settings and no orchestrator.

Run by `celery -A bench.raw_app worker -Q raw`; the broker comes from `BENCH_BROKER_URL` (Redis or
RabbitMQ; default `BENCH_REDIS_URL`), the Redis result backend a chord needs and the list each task
records its time in from `BENCH_REDIS_URL`. Settings copied from `workers/app.py`: JSON, late acks,
reject on worker loss, prefetch 1, the same Redis transport options, no task events.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import Celery

from workers.delivery import DELIVERY_SETTINGS

QUEUE = "raw"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
BROKER_URL = os.environ.get("BENCH_BROKER_URL") or REDIS_URL

app = Celery("bench_raw", broker=BROKER_URL, backend=REDIS_URL)
app.conf.update(
    **DELIVERY_SETTINGS,  # the product's own delivery settings: like is compared with like
    task_default_queue=QUEUE,
    worker_send_task_events=False,
    task_send_sent_event=False,
    result_expires=3600,
)

_client: Any = None
_client_pid: int | None = None


def configure(url: str, broker_url: str | None = None) -> None:
    """Point the benchmark process's side of the app at the run's Redis and broker (workers read the
    env)."""
    global REDIS_URL, BROKER_URL, _client
    REDIS_URL = url
    BROKER_URL = broker_url or url
    app.conf.update(broker_url=BROKER_URL, result_backend=url)
    # kombu keeps a pool per broker; the app drops its references to the last one's
    app._pool = None
    app.amqp._producer_pool = None
    _client = None


def _redis() -> Any:
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        _client = redis.Redis.from_url(REDIS_URL)
        _client_pid = os.getpid()
    return _client


@app.task(name="raw.hop")
def hop(key: str) -> None:
    """A no-op that records when it ran (one Redis round trip): chain hops, burst and chord ends."""
    _redis().rpush(key, repr(time.time()))


@app.task(name="raw.leaf", ignore_result=False)
def leaf() -> None:
    """A no-op whose (empty) result is stored, as a chord header task must."""
    return None
