"""A worker's membership of the cluster, wired to Celery's signals in the worker's main process:
register on start (and take back what a previous process with this id left running), heartbeat,
drain on warm shutdown, hand back what is still running when the grace period ends, leave.

The id is the worker's node name, or `ORCH_WORKER_ID` (`workers/identity.py`)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from typing import Any

from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from orchestrator import executors, recovery, workers_registry
from workers import identity, observe, resources, shutdown
from workers.tasks import follow_up

log = logging.getLogger(__name__)
_stop = threading.Event()
_heartbeat: threading.Thread | None = None


def _beat_forever(worker_id: str, interval: float) -> None:
    while not _stop.wait(interval):
        try:
            revive_as = "shutting_down" if shutdown.draining() else "active"
            if workers_registry.heartbeat(resources.engine(), worker_id, revive_as):
                log.warning("this worker had been presumed gone (no heartbeat in time); %s again", revive_as)
        except Exception:
            log.warning("worker heartbeat failed", exc_info=True)


@worker_ready.connect
def _register(sender: Any = None, **_: Any) -> None:
    global _heartbeat
    settings = resources.settings()
    engine = resources.engine()
    worker_id = identity.worker_id()
    queues = sorted(q.name for q in sender.task_consumer.queues) if sender is not None else []
    concurrency = getattr(getattr(sender, "pool", None), "limit", None) or settings.worker_concurrency
    # a process that just started runs nothing: whatever its id still holds was left by a dead one
    taken_back = recovery.hand_back_worker_nodes(engine, worker_id, "worker restarted")
    for outcome in taken_back:
        follow_up(outcome)
    observe.handed_back(len(taken_back))
    workers_registry.register(
        engine, worker_id, socket.gethostname(), os.getpid(), queues, executors.names(), concurrency
    )
    log.info("registered as worker %s", worker_id)
    _heartbeat = threading.Thread(
        target=_beat_forever,
        args=(worker_id, settings.heartbeat_interval),
        name="worker-heartbeat",
        daemon=True,
    )
    _heartbeat.start()


@worker_shutting_down.connect
def _drain(how: str | None = None, **_: Any) -> None:
    shutdown.begin_draining()
    worker_id = identity.worker_id()
    try:
        workers_registry.set_status(resources.engine(), worker_id, "shutting_down")
    except Exception:
        log.warning("could not mark the worker shutting_down", exc_info=True)
    if how == "Warm":
        threading.Thread(
            target=_end_grace,
            args=(worker_id, resources.settings().shutdown_grace),
            name="shutdown-grace",
            daemon=True,
        ).start()


def _end_grace(worker_id: str, grace: float) -> None:
    """Give running nodes `grace` seconds to finish or checkpoint; then hand back what is left and
    turn the warm shutdown cold, so a node that ignores `should_stop` cannot hold the worker."""
    engine = resources.engine()
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not workers_registry.running_nodes(engine, worker_id):
            return
        time.sleep(0.2)
    outcomes = recovery.hand_back_worker_nodes(engine, worker_id, "shutdown grace period ended")
    for outcome in outcomes:
        follow_up(outcome)
    observe.handed_back(len(outcomes))
    log.warning("shutdown grace ended: %d node(s) handed back; stopping now", len(outcomes))
    os.kill(os.getpid(), signal.SIGQUIT)  # Celery's cold shutdown: terminate the pool


@worker_shutdown.connect
def _leave(**_: Any) -> None:
    _stop.set()
    if _heartbeat is not None:  # a heartbeat in flight would revive the row marked gone below
        _heartbeat.join(timeout=15)
    try:
        workers_registry.set_status(resources.engine(), identity.worker_id(), "gone")
    except Exception:
        log.warning("could not mark the worker gone", exc_info=True)
