"""This worker's id: `ORCH_WORKER_ID` when set, else Celery's node name (`-n w1@%h`, `celery@<host>`).

Every write of the id reads it here: the registration, the heartbeats and the hand-backs in the
worker's main process, and the claims of nodes in its pool processes (and so the node rows and the
execution log). Two workers on one host have two node names (Celery needs them unique too), so
they are two workers, and a worker restarted with the same `-n` is the same worker again.

The main process learns the node name from `worker_init` (sent by every Celery worker, before its
pool starts). Pool processes forked from it inherit it; a pool process started afresh (the `spawn`
start method) is told it by `worker_process_init`, which names the worker since Celery 5.7.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_init, worker_process_init

from workers import resources

_node_name: str | None = None


def _remember(name: Any) -> None:
    global _node_name
    if isinstance(name, str) and name:
        _node_name = name


@worker_init.connect
def _from_worker(sender: Any = None, **_: Any) -> None:
    _remember(getattr(sender, "hostname", None))


@worker_process_init.connect
def _from_pool_process(sender: Any = None, **_: Any) -> None:
    _remember(sender)  # None before Celery 5.7: a forked process keeps what it inherited


def worker_id() -> str:
    """The id under which this worker registers, heartbeats, claims and hands back nodes.

    Raises RuntimeError in a process that is no Celery worker (or was not told its node name) when
    `ORCH_WORKER_ID` is not set: a made-up id would be another worker's, or nobody's."""
    configured = resources.settings().worker_id
    if configured:
        return configured
    if _node_name is None:
        raise RuntimeError("this process does not know its Celery node name; set ORCH_WORKER_ID")
    return _node_name
