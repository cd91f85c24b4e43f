"""A worker process's copy of the limits set through the API (`orchestrator/limit_overrides.py`),
read again every `REFRESH_S` by a thread of its own: a node's limits are worked out from it when its
message is about to be sent, without a query on the node path. (An admission pass reads the
committed value itself, under the limit's lock.)

Started in each pool process (prefork: after the fork, where the tasks run), and in the main process
of a worker whose pool runs tasks there (solo, threads); the recovery sweep runs in one of these."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery.signals import worker_process_init, worker_ready

from orchestrator import limit_overrides
from workers import resources

log = logging.getLogger(__name__)
_started_in: int | None = None  # the pid whose thread runs (a forked child starts its own)
_never = threading.Event()  # what the thread waits on between reads: it runs as long as its process


def _watch(interval: float) -> None:
    while True:
        try:
            limit_overrides.load(resources.engine())
        except Exception:
            log.warning("could not read the limits set through the API; keeping the last ones", exc_info=True)
        _never.wait(interval)


def start(interval: float = limit_overrides.REFRESH_S) -> None:
    """Start this process's watch thread, once per process."""
    global _started_in
    if _started_in == os.getpid():
        return
    _started_in = os.getpid()
    threading.Thread(target=_watch, args=(interval,), name="limit-watch", daemon=True).start()


@worker_process_init.connect
def _in_pool_process(**_: Any) -> None:
    start()


@worker_ready.connect
def _in_main_process(sender: Any = None, **_: Any) -> None:
    # a prefork worker's main process runs no task (it receives and schedules their messages, which
    # a thread with queries to make would only slow down): its pool processes have their own
    if type(getattr(sender, "pool", None)).__module__ != "celery.concurrency.prefork":
        start()
