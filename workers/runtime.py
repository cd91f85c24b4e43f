"""Running one claimed attempt: the executor's context, its heartbeat, and recording the result."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded
from sqlalchemy import Engine

from orchestrator import (
    catalog,
    completion,
    executors,
    failures,
    leases,
    logs,
    nodes,
    recovery,
    scheduling,
    templates,
)
from orchestrator.context import ExecutionContext
from orchestrator.errors import LostClaim, NodeFailure, OrchestratorError
from orchestrator.outcomes import Claim, Outcome
from workers import observe, shutdown

log = logging.getLogger(__name__)


class Heartbeats:
    """One thread per process renews the lease of every node running in it.

    Starting (and joining) a thread per node cost more than a no-op node's own work; nodes register
    here instead. The thread starts on first use in each process (Celery forks pool children after
    import; threads and locks are not carried over a fork). Each node is beaten `interval` seconds
    after it registered and then every `interval` seconds, as with a thread of its own. Registering
    wakes the thread only when the new node is due before the thread's next planned wake-up.
    """

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._running: dict[int, NodeRuntime] = {}
        self._due: dict[int, float] = {}
        self._idle_wait = 1.0
        self._next_wake = math.inf
        self._started = False

    def add(self, runtime: NodeRuntime) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                threading.Thread(target=self._run, name="node-heartbeats", daemon=True).start()
            due = time.monotonic() + runtime.interval
            self._running[id(runtime)] = runtime
            self._due[id(runtime)] = due
            self._idle_wait = runtime.interval
            wake = due < self._next_wake
        if wake:
            self._wake.set()

    def remove(self, runtime: NodeRuntime) -> None:
        with self._lock:
            self._running.pop(id(runtime), None)
            self._due.pop(id(runtime), None)

    def _run(self) -> None:
        while True:
            self._wake.clear()  # before looking: a node added from here on can wake the wait below
            with self._lock:
                now = time.monotonic()
                due = [self._running[key] for key, at in self._due.items() if at <= now]
                for runtime in due:
                    self._due[id(runtime)] = now + runtime.interval
                self._next_wake = min(self._due.values(), default=now + self._idle_wait)
            for runtime in due:
                runtime.beat()
            self._wake.wait(max(self._next_wake - time.monotonic(), 0.0))


_heartbeats = Heartbeats()


class NodeRuntime:
    """The context's side effects for one attempt, plus its lease renewal while it runs."""

    def __init__(self, engine: Engine, held: Claim, executor: str | None, interval: float) -> None:
        self._engine = engine
        self._held = held
        self._executor = executor
        self.interval = interval
        self._stop_requested = threading.Event()

    def __enter__(self) -> NodeRuntime:
        _heartbeats.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _heartbeats.remove(self)

    def beat(self) -> None:
        """Renew the lease (from the heartbeat thread); a missed beat is not fatal, the next may get
        through. A node still running at its first beat gets its "node running" line written."""
        try:
            write_unwritten(self._engine, self._held)
            if not leases.heartbeat(self._engine, self._held):
                self._stop_requested.set()
        except Exception:
            log.warning(
                "heartbeat for %s/%s failed", self._held.instance_id, self._held.node_id, exc_info=True
            )

    def log(self, level: str, message: str, details: dict[str, Any] | None) -> None:
        with self._held.unwritten.taken() as earlier, self._engine.begin() as conn:
            logs.write(
                conn,
                *earlier,
                logs.LogEntry(
                    self._held.instance_id,
                    message,
                    level=level,
                    node_id=self._held.node_id,
                    details=details,
                    executor=self._executor,
                    worker_id=self._held.worker_id,
                    attempt=self._held.attempt,
                ),
            )

    def checkpoint(self, data: dict[str, Any]) -> None:
        write_unwritten(self._engine, self._held)
        leases.save_checkpoint(self._engine, self._held, data)

    def heartbeat(self) -> None:
        write_unwritten(self._engine, self._held)
        if not leases.heartbeat(self._engine, self._held):
            self._stop_requested.set()

    def should_stop(self) -> bool:
        return self._stop_requested.is_set() or shutdown.draining()


def write_unwritten(engine: Engine, held: Claim) -> None:
    """Write the attempt's pending log lines (its "node running" line) in a transaction of their own."""
    with held.unwritten.taken() as earlier:
        if earlier:
            with engine.begin() as conn:
                logs.write(conn, *earlier)


class Ending(StrEnum):
    """How one attempt ended; its Celery task's state follows from it (`workers/task_states.py`)."""

    COMPLETED = "completed"
    SKIPPED = "skipped"  # its `when` was false
    # a node that runs no executor: started, it waits without the slot until what it handed off to
    # completes it (a sub-workflow's child instance; a wait's signal or timeout; a sleep's timer)
    HANDED_OFF = "handed off"
    RETRYING = "retrying"  # failed, and queued for another attempt
    FAILED = "failed"  # failed for good
    HANDED_BACK = "handed back"  # stopped on request: queued for another attempt, no failure counted
    FENCED = "fenced"  # no longer held by this attempt (cancelled, taken over): its result dropped


@dataclass(frozen=True)
class Attempt:
    """What one attempt did: the Outcome to act on after the commit, and how it ended."""

    outcome: Outcome
    ending: Ending
    attempt: int
    duration_ms: float
    # the error of a failed attempt; for a hand-back, why it stopped
    error: dict[str, Any] | None = None


def run_attempt(engine: Engine, held: Claim, heartbeat_interval: float) -> Outcome:
    """`run`, for callers that only act on its Outcome."""
    return run(engine, held, heartbeat_interval).outcome


def run(engine: Engine, held: Claim, heartbeat_interval: float) -> Attempt:
    """Render the config, call the executor and record the result; fencing losses are dropped.

    An executor that stops because it was asked to (`ctx.should_stop`: a pause, a worker shutting
    down) is handed back, not failed: whatever it raises once the stop was asked (`StopRequested`,
    or its own error) puts the node back to `queued` with attempt + 1, no failure or retry counted.

    Everything after the claim is inside the handlers below, reads included: the node is claimed, and
    an error that escaped would leave it running with nobody working on it."""
    started = time.perf_counter()

    def elapsed() -> float:
        return round((time.perf_counter() - started) * 1000, 3)

    def ended(outcome: Outcome, ending: Ending, error: dict[str, Any] | None = None) -> Attempt:
        return Attempt(outcome, ending, held.attempt, elapsed(), error)

    try:
        spec = catalog.load_definition(engine, held.definition_id).node(held.node_id)
        scope: dict[str, Any] = {"nodes": {node: {"output": out} for node, out in held.outputs.items()}}
        instance: tuple[dict[str, Any], str | None] | None = None
        if spec.reads_instance:
            instance = scheduling.instance_data(engine, held.instance_id)
            scope["input"] = instance[0]
            scope["instance"] = {"id": held.instance_id, "externalId": instance[1]}
        if spec.when is not None and not templates.evaluate_condition(spec.when, scope):
            return ended(
                completion.complete(engine, held, None, skipped=True, duration_ms=elapsed()), Ending.SKIPPED
            )
        config = templates.render(spec.config, scope)
        kind = nodes.of(spec.type)
        if not kind.runs_executor:
            write_unwritten(engine, held)  # the node stays running until what it hands off to ends
            return ended(kind.start(engine, held, spec, config), Ending.HANDED_OFF)
        return _execute(engine, held, spec.executor, config, instance, heartbeat_interval, elapsed)
    except LostClaim as exc:
        return _fenced(engine, held, exc, elapsed())
    except NodeFailure as exc:
        error = {"code": "EXECUTOR_ERROR", "message": str(exc), "type": type(exc).__name__, **exc.details}
        return _fail(engine, held, error, exc.retryable, elapsed())
    except SoftTimeLimitExceeded:
        error = {"code": "NODE_TIMEOUT", "message": f"node {held.node_id} exceeded its timeout"}
        return _fail(engine, held, error, True, elapsed())
    except OrchestratorError as exc:
        # templates that do not resolve, unknown executors: another attempt would not help
        return _fail(engine, held, {"code": exc.code, "message": exc.message}, False, elapsed())
    except Exception as exc:
        error = failures.unexpected(exc, f"{held.instance_id}/{held.node_id}")
        return _fail(engine, held, error, True, elapsed())


def _execute(
    engine: Engine,
    held: Claim,
    executor: str | None,
    config: dict[str, Any],
    instance: tuple[dict[str, Any], str | None] | None,
    heartbeat_interval: float,
    elapsed: Callable[[], float],
) -> Attempt:
    """Call the executor under a renewed lease and store its output; raises what `run` handles."""
    fn = executors.get(executor or "")
    with NodeRuntime(engine, held, executor, heartbeat_interval) as runtime:
        ctx = ExecutionContext(
            held.instance_id,
            held.node_id,
            held.attempt,
            None if instance is None else instance[0],
            held.last_checkpoint,
            runtime,
            None if instance is None else instance[1],
            load_instance=None
            if instance is not None
            else lambda: scheduling.instance_data(engine, held.instance_id),
        )
        try:
            output = fn(ctx, config)
        except SoftTimeLimitExceeded:
            raise  # past its timeout: a failure even if a stop was asked meanwhile
        except Exception as exc:
            if not runtime.should_stop():
                raise
            # stopped because it was asked to, not because the node is broken
            return _handed_back(engine, held, exc, elapsed())
    duration_ms = elapsed()
    outcome = completion.complete(engine, held, output, duration_ms=duration_ms)
    observe.attempt_completed(held, executor, duration_ms)
    return Attempt(outcome, Ending.COMPLETED, held.attempt, duration_ms)


def _handed_back(engine: Engine, held: Claim, exc: Exception, duration_ms: float) -> Attempt:
    """Hand back an attempt whose executor stopped on request. Raises LostClaim (cancelled: the node
    is no longer this attempt's)."""
    said = str(exc)[:200] or type(exc).__name__
    if shutdown.draining():
        reason = "worker shutting down"
        outcome = recovery.hand_back_held(engine, held, reason)
        observe.handed_back(1)
    else:  # the instance is no longer running: paused (or ended, resumed on a retry)
        reason = "asked to stop"
        outcome = recovery.hand_back_held(engine, held, f"{reason}: {said}", level="info")
    error = {"code": "HANDED_BACK", "message": f"{reason}: {said}"}
    return Attempt(outcome, Ending.HANDED_BACK, held.attempt, duration_ms, error)


def _fail(engine: Engine, held: Claim, error: dict[str, Any], retryable: bool, duration_ms: float) -> Attempt:
    try:
        outcome = completion.fail(engine, held, error, retryable=retryable, duration_ms=duration_ms)
    except LostClaim as exc:
        return _fenced(engine, held, exc, duration_ms)
    observe.attempt_failed(engine, held, duration_ms, outcome)
    ending = Ending.RETRYING if outcome.retrying else Ending.FAILED
    return Attempt(outcome, ending, held.attempt, duration_ms, error)


def _fenced(engine: Engine, held: Claim, exc: LostClaim, duration_ms: float) -> Attempt:
    _record_fencing(engine, held, exc)
    error = {"code": "FENCED", "message": str(exc)}
    return Attempt(Outcome(), Ending.FENCED, held.attempt, duration_ms, error)


def _record_fencing(engine: Engine, held: Claim, exc: LostClaim) -> None:
    log.warning("dropped a stale result: %s", exc)
    observe.fencing_rejected()
    with held.unwritten.taken() as earlier, engine.begin() as conn:
        logs.write(
            conn,
            *earlier,
            logs.LogEntry(
                held.instance_id,
                f"result of attempt {held.attempt} dropped: the node is no longer held by it",
                level="warning",
                node_id=held.node_id,
                worker_id=held.worker_id,
                attempt=held.attempt,
                details={"code": "FENCED"},
            ),
        )
