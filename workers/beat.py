"""Periodic tasks run by Celery beat: the recovery sweep and the firing of schedules (singletons)."""

from __future__ import annotations

import functools
import logging

from orchestrator import recovery, retention, schedule_firing
from orchestrator.locks import advisory_lock
from workers import broker_probe, dispatch, resources
from workers.app import app
from workers.tasks import follow_up

log = logging.getLogger(__name__)

# Held by whoever acts on the sweep's behalf: a recovery sweep or a schedule pass (the spec fires
# schedules under the sweep's lock).
SWEEP_LOCK = "orchestrator.recovery_sweep"
# Held by a recovery sweep only. Beat sends a sweep and a schedule pass on the same tick, so a sweep
# that skipped whenever it met a schedule pass would lose a whole interval of recovery; a sweep skips
# only for another sweep, and waits out a schedule pass (milliseconds) on SWEEP_LOCK.
SWEEPER_LOCK = "orchestrator.recovery_sweeper"
# The longest a sweep waits for a schedule pass to let go of SWEEP_LOCK.
_PASS_WAIT_S = 5


@app.task(name="orchestrator.recover", acks_late=False)
def recover() -> dict[str, int]:
    """One recovery sweep; a second sweep running at the same moment skips instead of acting twice."""
    engine = resources.engine()
    # the locks expire if their holder stalls (frozen, hung) for a heartbeat timeout: a stalled sweep
    # must not stop every other sweep, and a second sweep is only duplicate work
    timeout = resources.settings().heartbeat_timeout
    with advisory_lock(engine, SWEEPER_LOCK, expire_after=timeout) as first:
        if not first:
            log.info("the sweep lock is held (another sweep is running); skipping")
            return {"skipped": 1}
        wait = max(1, min(_PASS_WAIT_S, int(timeout)))
        with advisory_lock(engine, SWEEP_LOCK, expire_after=timeout, wait=wait) as held:
            if not held:
                log.info("the sweep lock is held (a schedule pass, for over %d s); skipping", wait)
                return {"skipped": 1}
            # the broker's count of waiting messages keeps a long queue from being taken for lost
            # messages
            report = recovery.sweep(engine, timeout, count_waiting=broker_probe.count_waiting)
        # sent with the shared lock let go: thousands of sends to a slow broker must not hold the
        # schedule passes off (a fire time late by a minute is missed with catchup: none); the
        # sweeper lock still keeps the next sweep from acting before these are out
        _send_all(report)
    if report.handed_back or report.resent or report.started or report.timed_out:
        log.warning(
            "recovery: %d handed back, %d resent, %d pending started, %d timed out, %d workers gone",
            report.handed_back,
            report.resent,
            report.started,
            report.timed_out,
            report.workers_gone,
        )
    if report.failed:
        log.error("recovery: actions failed this sweep (see above): %s", ", ".join(report.failed))
    return {
        "failed": len(report.failed),
        "handedBack": report.handed_back,
        "resent": report.resent,
        "started": report.started,
        "timedOut": report.timed_out,
        "workersGone": report.workers_gone,
    }


@app.task(name="orchestrator.fire_schedules", acks_late=False)
def fire_schedules() -> dict[str, object] | None:
    """Start the instances of the schedules' due fire times (`orchestrator/schedule_firing.py`); what
    the pass did, or None when it did nothing (its log lines are dropped: `observe.QuietSchedulePasses`).

    Under the sweep's single-runner lock: of two beats one fires, and a pass that finds a sweep (or
    another pass) holding it skips (the next pass, an ORCH_SCHEDULE_INTERVAL later, fires). The lock
    only saves duplicate work: a fire time's instance is created once whoever fires it (its externalId)."""
    engine = resources.engine()
    with advisory_lock(engine, SWEEP_LOCK, expire_after=resources.settings().heartbeat_timeout) as held:
        if not held:
            return None
        report = schedule_firing.fire_due(engine)
        _send_each([functools.partial(follow_up, outcome) for outcome in report.outcomes])
    if not (report.fired or report.skipped or report.missed or report.failed):
        return None
    return {
        "fired": report.fired,
        "skippedFires": report.skipped,
        "missed": report.missed,
        "failed": report.failed,
        "lags": [[catchup, lag] for catchup, lag in report.lags],
    }


def _send_all(report: recovery.SweepReport) -> None:
    """Send what the sweep's committed actions call for, each on its own: one send that fails (the
    broker going away) is logged and does not stop the others; the next sweeps resend what is lost."""
    sends = [functools.partial(follow_up, outcome) for outcome in report.outcomes]
    sends += [
        functools.partial(dispatch.send_notify, c.instance_id, c.seen) for c in report.overdue_callbacks
    ]
    _send_each(sends)


def _send_each(sends: list[functools.partial[None]]) -> None:
    for send in sends:
        try:
            send()
        except Exception:
            log.exception("recovery: a message of this sweep could not be sent")


@app.task(name="orchestrator.prune", acks_late=False)
def prune() -> int:
    """Delete logs and checkpoints of instances finished more than ORCH_RETENTION_DAYS ago."""
    removed = retention.prune(resources.engine(), resources.settings().retention_days)
    if removed:
        log.info("retention: %d log and checkpoint rows pruned", removed)
    return removed
