"""Running one claimed attempt: the executor's context, its heartbeat, and recording the result."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded
from sqlalchemy import Engine

from orchestrator import catalog, executors, leases, logs, recovery, scheduling, templates
from orchestrator.context import ExecutionContext
from orchestrator.errors import LostClaim, NodeFailure, OrchestratorError
from orchestrator.scheduling import Claim, Outcome
from workers import observe, shutdown

log = logging.getLogger(__name__)


class NodeRuntime:
    """The context's side effects for one attempt, plus a background heartbeat while it runs."""

    def __init__(self, engine: Engine, held: Claim, executor: str | None, interval: float) -> None:
        self._engine = engine
        self._held = held
        self._executor = executor
        self._interval = interval
        self._stop_requested = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{held.node_id}", daemon=True)

    def __enter__(self) -> NodeRuntime:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._done.wait(self._interval):
            try:
                if not leases.heartbeat(self._engine, self._held):
                    self._stop_requested.set()
            except Exception:  # a missed beat is not fatal; the next one may get through
                log.warning(
                    "heartbeat for %s/%s failed", self._held.instance_id, self._held.node_id, exc_info=True
                )

    def log(self, level: str, message: str, details: dict[str, Any] | None) -> None:
        with self._engine.begin() as conn:
            logs.write(
                conn,
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
        leases.save_checkpoint(self._engine, self._held, data)

    def heartbeat(self) -> None:
        if not leases.heartbeat(self._engine, self._held):
            self._stop_requested.set()

    def should_stop(self) -> bool:
        return self._stop_requested.is_set() or shutdown.draining()


def run_attempt(engine: Engine, held: Claim, heartbeat_interval: float) -> Outcome:
    """Render the config, call the executor and record the result; fencing losses are dropped."""
    definition = catalog.load_definition(engine, held.definition_id)
    spec = definition.node(held.node_id)
    scope = {
        "input": held.input,
        "nodes": {node: {"output": output} for node, output in held.outputs.items()},
        "instance": {"id": held.instance_id, "externalId": held.external_id},
    }
    started = time.perf_counter()

    def elapsed() -> float:
        return round((time.perf_counter() - started) * 1000, 3)

    try:
        if spec.when is not None and not templates.evaluate_condition(spec.when, scope):
            return scheduling.complete(engine, held, None, skipped=True, duration_ms=elapsed())
        config = templates.render(spec.config, scope)
        if spec.type == "subworkflow":
            from workers import subworkflows

            return subworkflows.start_child(engine, held, spec, config)
        fn = executors.get(spec.executor or "")
        with NodeRuntime(engine, held, spec.executor, heartbeat_interval) as runtime:
            ctx = ExecutionContext(
                held.instance_id,
                held.node_id,
                held.attempt,
                held.input,
                held.last_checkpoint,
                runtime,
                held.external_id,
            )
            try:
                output = fn(ctx, config)
            except Exception:
                if shutdown.draining():
                    # stopped because this worker is going away, not because the node is broken
                    return recovery.hand_back_held(engine, held, "worker shutting down")
                raise
        duration_ms = elapsed()
        outcome = scheduling.complete(engine, held, output, duration_ms=duration_ms)
        observe.attempt_completed(held, spec.executor, duration_ms)
        return outcome
    except LostClaim as exc:
        _record_fencing(engine, held, exc)
        return Outcome()
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
        error = {
            "code": "EXECUTOR_ERROR",
            "message": f"{type(exc).__name__}: {exc}",
            "type": type(exc).__name__,
            "traceback": traceback.format_exc(limit=8),
        }
        return _fail(engine, held, error, True, elapsed())


def _fail(engine: Engine, held: Claim, error: dict[str, Any], retryable: bool, duration_ms: float) -> Outcome:
    try:
        outcome = scheduling.fail(engine, held, error, retryable=retryable, duration_ms=duration_ms)
    except LostClaim as exc:
        _record_fencing(engine, held, exc)
        return Outcome()
    observe.attempt_failed(engine, held, duration_ms, outcome)
    return outcome


def _record_fencing(engine: Engine, held: Claim, exc: LostClaim) -> None:
    log.warning("dropped a stale result: %s", exc)
    observe.fencing_rejected()
    with engine.begin() as conn:
        logs.write(
            conn,
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
