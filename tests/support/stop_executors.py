"""Executors that meet a stop request in each way an executor may: stop and hand the node back,
fail with their own error once asked, or claim a stop nobody asked for. Each asks for its heartbeat
first, so it learns of a pause or a cancel at once (no waiting for the heartbeat thread).

Import this module in a test (the process that runs the node must know the executors)."""

from __future__ import annotations

from typing import Any

from orchestrator import StopRequested, executor
from orchestrator.context import ExecutionContext

STOPS = "tests.stops"
FAILS_WHEN_ASKED = "tests.fails_when_asked"
STOPS_UNASKED = "tests.stops_unasked"


@executor(STOPS)
def stops(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Stops when asked, checkpointing its attempt; otherwise returns the checkpoint it started from."""
    ctx.heartbeat()
    if ctx.should_stop:
        ctx.checkpoint({"stoppedIn": ctx.attempt})
        raise StopRequested(f"stopped in attempt {ctx.attempt}")
    return {"startedFrom": ctx.last_checkpoint}


@executor(FAILS_WHEN_ASKED)
def fails_when_asked(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Raises an error of its own (not StopRequested) when asked to stop."""
    ctx.heartbeat()
    if ctx.should_stop:
        raise RuntimeError("interrupted")
    return {}


@executor(STOPS_UNASKED)
def stops_unasked(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Raises StopRequested though nobody asked it to stop."""
    raise StopRequested("nobody asked")
