"""The raw Celery baseline: a tiny app with the production worker settings and no orchestrator.

Run by `celery -A bench.raw_app worker -Q raw`; the broker (and the Redis result backend a chord
needs) comes from `BENCH_REDIS_URL`. Settings copied from `workers/app.py`: JSON, late acks,
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

app = Celery("bench_raw", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    **DELIVERY_SETTINGS,  # the product's own delivery settings: like is compared with like
    task_default_queue=QUEUE,
    worker_send_task_events=False,
    task_send_sent_event=False,
    result_expires=3600,
)

_client: Any = None
_client_pid: int | None = None


def configure(url: str) -> None:
    """Point the benchmark process's side of the app at the run's Redis (workers read the env)."""
    global REDIS_URL, _client
    REDIS_URL = url
    app.conf.update(broker_url=url, result_backend=url)
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
