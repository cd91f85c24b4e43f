"""Periodic tasks run by Celery beat: the recovery sweep (a singleton) and its schedule."""

from __future__ import annotations

import logging

from orchestrator import recovery, retention
from orchestrator.locks import advisory_lock
from workers import resources
from workers.app import app
from workers.tasks import follow_up

log = logging.getLogger(__name__)

SWEEP_LOCK = "orchestrator.recovery_sweep"


@app.task(name="orchestrator.recover", acks_late=False)
def recover() -> dict[str, int]:
    """One recovery sweep; a second sweep running at the same moment skips instead of acting twice."""
    engine = resources.engine()
    with advisory_lock(engine, SWEEP_LOCK) as held:
        if not held:
            log.info("another recovery sweep is running; skipping")
            return {"skipped": 1}
        report = recovery.sweep(engine, resources.settings().heartbeat_timeout)
        for outcome in report.outcomes:
            follow_up(outcome)
    if report.handed_back or report.resent or report.timed_out:
        log.warning(
            "recovery: %d handed back, %d resent, %d timed out, %d workers gone",
            report.handed_back,
            report.resent,
            report.timed_out,
            report.workers_gone,
        )
    return {
        "handedBack": report.handed_back,
        "resent": report.resent,
        "timedOut": report.timed_out,
        "workersGone": report.workers_gone,
    }


@app.task(name="orchestrator.prune", acks_late=False)
def prune() -> int:
    """Delete logs and checkpoints of instances finished more than ORCH_RETENTION_DAYS ago."""
    removed = retention.prune(resources.engine(), resources.settings().retention_days)
    if removed:
        log.info("retention: %d log and checkpoint rows pruned", removed)
    return removed
