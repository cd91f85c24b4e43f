"""Observability of the worker side: per-node metrics in Redis, the log context, JSON log format.

Hooks into Celery's signals (so the task code stays as it is) and offers calls to the node path in
`workers/runtime.py`: `attempt_completed`, `attempt_failed`, `fencing_rejected`, `handed_back`. None
raises: a metrics store that is down is logged, skipped for a while, and the node goes on. Attempts,
one per node, are added up in the process (`metrics.Tally`) and written every `FLUSH_S` seconds by a
thread of their own, and when the process exits: no Redis round trip on the node path. The rare
counts (fencing, hand-backs) are written at once.

Queue wait is measured from the message: `before_task_publish` stamps the send time on every
`run_node` message, and the worker subtracts the later of that and the message's ETA (a retry's
backoff is not waiting) from the moment the task starts.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime
from typing import Any

from celery.app.amqp import AMQP
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    before_task_publish,
    task_postrun,
    task_prerun,
    task_success,
    worker_process_shutdown,
    worker_shutdown,
)
from sqlalchemy import Engine

from orchestrator import catalog, logging_setup, metrics
from orchestrator.outcomes import Claim, Outcome
from workers import resources

log = logging.getLogger(__name__)

RUN_NODE = "orchestrator.run_node"
RECOVER = "orchestrator.recover"
FIRE_SCHEDULES = "orchestrator.fire_schedules"
SENT_AT_HEADER = "orch_sent_at"
# after a failed write the store is left alone this long, so a Redis outage costs no node time
BACKOFF_S = 30.0
FLUSH_S = 0.5

_lock = threading.Lock()
_client: Any = None
_client_pid: int | None = None
_skip_until = 0.0
_waits: dict[str, float] = {}  # Celery task id -> queue wait (s), from task_prerun to the attempt's end
_log_tokens: dict[str, Any] = {}


def _store() -> Any:
    """This process's Redis client for metrics, or None when there is no store or it is backing off."""
    global _client, _client_pid
    if time.monotonic() < _skip_until:
        return None
    if _client is None or _client_pid != os.getpid():
        with _lock:
            if _client is None or _client_pid != os.getpid():
                url = metrics.store_url(resources.settings().broker_url, resources.settings().metrics_url)
                if url is None:
                    return None
                _client = metrics.connect(url, timeout=1.0)
                _client_pid = os.getpid()
    return _client


class ReadableAMQP(AMQP):
    """Celery's message factory with two changes: the `task-sent` event names a task by its shadow
    name (`workflow/node [executor]`), as the worker's `task-received` already does; and a task
    annotated `send_events: False` (the housekeeping tasks, `workers/app.py`), whose workers send no
    events, is sent without one either, so Flower does not list it as sent and never started.

    Events of sender and worker travel separately; when the sent event arrives last, Flower would
    otherwise rename the task back to plain `orchestrator.run_node`. Used as `Celery(amqp=...)`.
    """

    def as_task_v2(self, task_id: str, name: str, *args: Any, **kwargs: Any) -> Any:
        message = super().as_task_v2(task_id, name, *args, **kwargs)
        if message.sent_event and not _sends_events(self.app.conf.task_annotations, name):
            return message._replace(sent_event=None)
        shadow = message.headers.get("shadow")
        if shadow and message.sent_event:
            message.sent_event["name"] = shadow
        return message


def _sends_events(annotations: Any, name: str) -> bool:
    annotation = annotations.get(name) if isinstance(annotations, dict) else None
    return not (isinstance(annotation, dict) and annotation.get("send_events") is False)


def _record(action: Any, *args: Any) -> None:
    global _skip_until
    try:
        client = _store()
        if client is not None:
            action(client, *args)
    except Exception as exc:  # metrics must never fail a node
        _skip_until = time.monotonic() + BACKOFF_S
        log.warning("recording metrics failed (%s); not recording for %ss", exc, BACKOFF_S)


def _task_id(held: Claim) -> str:
    # the same derivation as workers.dispatch.task_id (not imported: dispatch imports the app)
    return f"{held.instance_id}:{held.node_id}:{held.attempt}"


def attempt_completed(held: Claim, executor: str | None, duration_ms: float) -> None:
    """Record an executor attempt whose result was committed."""
    _attempt(held, executor, duration_ms, metrics.COMPLETED)


def attempt_failed(engine: Engine, held: Claim, duration_ms: float, result: Outcome) -> None:
    """Record a failed attempt: a retry when the failure queued this node again (sent now, or on
    resume for a paused instance), else a failure."""
    retried = result.retrying
    try:
        # the definition is cached per process (run_attempt just loaded it): this costs no query
        executor = catalog.load_definition(engine, held.definition_id).node(held.node_id).executor
    except Exception:
        log.warning(
            "no executor name for the metrics of %s/%s", held.instance_id, held.node_id, exc_info=True
        )
        return
    _attempt(held, executor, duration_ms, metrics.RETRIED if retried else metrics.FAILED)


class _Attempts:
    """This process's tally of finished attempts and the thread that writes it out.

    The thread starts on first use in each process (pool children are forked after import).
    """

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._tally = metrics.Tally()
        self._started = False

    def add(self, executor: str, outcome: str, duration_s: float, wait_s: float | None) -> None:
        with self._lock:
            self._tally.attempt(executor, outcome, duration_s, wait_s)
            if not self._started:
                self._started = True
                threading.Thread(target=self._run, name="metrics-flush", daemon=True).start()

    def flush(self) -> None:
        # written outside the lock, so a slow or absent store never holds up a node adding to it;
        # while the store is backing off, what was added meanwhile is dropped (best effort)
        with self._lock:
            if not self._tally.pending():
                return
            tally, self._tally = self._tally, metrics.Tally()
        _record(tally.flush)

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_S)
            self.flush()


_attempts = _Attempts()


def _attempt(held: Claim, executor: str | None, duration_ms: float, outcome: str) -> None:
    if executor is None:
        return  # sub-workflow nodes run no executor
    _attempts.add(executor, outcome, duration_ms / 1000, _waits.get(_task_id(held)))


@worker_process_shutdown.connect
@worker_shutdown.connect
def flush(**_: Any) -> None:
    """Write the attempts added up so far (a pool process or a worker about to exit)."""
    _attempts.flush()


def fencing_rejected() -> None:
    _record(metrics.increment, {metrics.FENCING_REJECTIONS: 1})


def handed_back(count: int) -> None:
    """Record nodes a stopping (or restarted) worker handed back; the sweep's are counted apart."""
    if count:
        _record(metrics.increment, {metrics.SHUTDOWN_HANDBACKS: count})


def _eta_timestamp(eta: Any) -> float:
    if isinstance(eta, datetime):
        return eta.timestamp()
    try:
        return datetime.fromisoformat(str(eta)).timestamp() if eta else 0.0
    except ValueError:
        return 0.0


@before_task_publish.connect
def _stamp_send_time(sender: Any = None, headers: dict[str, Any] | None = None, **_: Any) -> None:
    if sender == RUN_NODE and headers is not None:
        headers.setdefault(SENT_AT_HEADER, time.time())


@task_prerun.connect
def _task_started(task_id: str = "", task: Any = None, args: Any = None, **_: Any) -> None:
    name = getattr(task, "name", None)
    args = list(args or ())
    if name == RUN_NODE:
        request = task.request
        sent = getattr(request, SENT_AT_HEADER, None)
        if sent is not None:
            due = max(float(sent), _eta_timestamp(getattr(request, "eta", None)))
            _waits[task_id] = max(0.0, time.time() - due)
    ids: dict[str, Any] = {"task_id": task_id, "task_name": name}
    if name and name.startswith("orchestrator.") and args and isinstance(args[0], str):
        ids["instance_id"] = args[0]
        if name == RUN_NODE and len(args) >= 3:
            ids["node_id"], ids["attempt"] = args[1], args[2]
    _log_tokens[task_id] = logging_setup.bind(**ids)


@task_postrun.connect
def _task_ended(task_id: str = "", **_: Any) -> None:
    _waits.pop(task_id, None)
    token = _log_tokens.pop(task_id, None)
    try:
        logging_setup.unbind(token)
    except ValueError:  # bound in another context (should not happen): clear instead
        logging_setup.unbind()


@task_success.connect
def _sweep_done(sender: Any = None, result: Any = None, **_: Any) -> None:
    if getattr(sender, "name", None) != RECOVER or not isinstance(result, dict):
        return
    counts = {
        metrics.RECOVERIES: int(result.get("handedBack", 0)),
        metrics.RESENDS: int(result.get("resent", 0)),
        metrics.RECOVERY_STARTS: int(result.get("started", 0)),
        metrics.INSTANCE_TIMEOUTS: int(result.get("timedOut", 0)),
        metrics.WORKERS_GONE: int(result.get("workersGone", 0)),
    }
    if any(counts.values()):
        _record(metrics.increment, counts)


@task_success.connect
def _schedules_fired(sender: Any = None, result: Any = None, **_: Any) -> None:
    # a pass that did nothing, or found the lock taken, returns None
    if getattr(sender, "name", None) != FIRE_SCHEDULES or not isinstance(result, dict):
        return
    tally = metrics.Tally()
    outcomes = {"fired": "fired", "skipped": "skippedFires", "missed": "missed", "failed": "failed"}
    tally.schedule_pass(
        {outcome: int(result.get(key, 0)) for outcome, key in outcomes.items()},
        [(str(catchup), float(lag)) for catchup, lag in result.get("lags", [])],
    )
    if tally.pending():
        _record(tally.flush)


class QuietSchedulePasses(logging.Filter):
    """Drops Celery's lines about schedule passes that did nothing: beat's "Sending due task", the
    worker's "received", and "succeeded" with no result. A pass a second would otherwise fill the
    beat and control worker logs; a pass that started, skipped or dropped something is still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, dict) and args.get("name") == FIRE_SCHEDULES:
            return args.get("return_value", "None") != "None"
        return not (isinstance(args, tuple) and FIRE_SCHEDULES in args)


for _name in ("celery.beat", "celery.worker.strategy", "celery.app.trace"):
    logging.getLogger(_name).addFilter(QuietSchedulePasses())


@after_setup_logger.connect
def _json_root_logs(logger: logging.Logger | None = None, **_: Any) -> None:
    if logger is not None and resources.settings().log_format.lower() == logging_setup.JSON:
        logging_setup.use_json(logger.handlers)


@after_setup_task_logger.connect
def _json_task_logs(logger: logging.Logger | None = None, **_: Any) -> None:
    _json_root_logs(logger)
