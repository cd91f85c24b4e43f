"""Worker registration and heartbeats, wired to Celery's worker signals (main process only)."""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from orchestrator import executors, workers_registry
from workers import resources, shutdown

log = logging.getLogger(__name__)
_stop = threading.Event()


def _beat_forever(worker_id: str, interval: float) -> None:
    while not _stop.wait(interval):
        try:
            workers_registry.heartbeat(resources.engine(), worker_id)
        except Exception:
            log.warning("worker heartbeat failed", exc_info=True)


@worker_ready.connect
def _register(sender: Any = None, **_: Any) -> None:
    settings = resources.settings()
    consumer = sender
    queues = sorted(q.name for q in consumer.task_consumer.queues) if consumer is not None else []
    concurrency = getattr(getattr(consumer, "pool", None), "limit", None) or settings.worker_concurrency
    workers_registry.register(
        resources.engine(),
        settings.worker_id,
        socket.gethostname(),
        os.getpid(),
        queues,
        executors.names(),
        concurrency,
    )
    threading.Thread(
        target=_beat_forever,
        args=(settings.worker_id, settings.heartbeat_interval),
        name="worker-heartbeat",
        daemon=True,
    ).start()


@worker_shutting_down.connect
def _draining(**_: Any) -> None:
    shutdown.begin_draining()
    try:
        workers_registry.set_status(resources.engine(), resources.settings().worker_id, "shutting_down")
    except Exception:
        log.warning("could not mark the worker shutting_down", exc_info=True)


@worker_shutdown.connect
def _gone(**_: Any) -> None:
    _stop.set()
    try:
        workers_registry.set_status(resources.engine(), resources.settings().worker_id, "gone")
    except Exception:
        log.warning("could not mark the worker gone", exc_info=True)
