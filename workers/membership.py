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
from pathlib import Path
from typing import Any

from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from orchestrator import executors, recovery, workers_registry
from orchestrator.workers_registry import Registration
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
    holder = _live_holder(workers_registry.registration(engine, worker_id))
    if holder is not None:
        log.error(
            "worker id %s is already used by process %d on this host: not taking back its nodes. Give "
            "each worker its own node name (-n name@%%h) or ORCH_WORKER_ID; if that process is no "
            "worker, the recovery sweep hands back the id's nodes once their heartbeats expire",
            worker_id,
            holder,
        )
    else:
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


def _live_holder(previous: Registration | None) -> int | None:
    """The pid of another live process on this host registered under our id, if there is one: two
    workers started with one node name (or one ORCH_WORKER_ID). Its nodes are not ours to take back.
    A worker restarted after a crash finds its predecessor's pid dead (or, in a new container with
    the same hostname, equal to its own)."""
    if previous is None or previous.pid is None:
        return None
    if previous.hostname != socket.gethostname() or previous.pid == os.getpid():
        return None
    try:
        os.kill(previous.pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return None
    except PermissionError:
        return previous.pid  # it exists, under another user
    return None if _zombie(previous.pid) else previous.pid


def _zombie(pid: int) -> bool:
    """An exited process not yet reaped by its parent (Linux; elsewhere assumed not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


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
