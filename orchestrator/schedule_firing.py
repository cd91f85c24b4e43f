"""Firing schedules: the instances of the fire times that are due, each created at most once.

Run by beat (`workers/beat.py`) under an advisory lock, but correct without it: two beats, or a beat
that restarts mid-pass, cannot start a fire time twice, because

- the instance of a fire time has the externalId `schedule:<name>:<fire time>`, and the database's
  unique key on (workflow, externalId) makes a second create return the first instance;
- `next_fire_at` advances by compare-and-set on the value the pass read, after the instances are
  created: a pass that dies in between leaves the fire time due, and the next pass finds its instance.

Fire times missed while nothing ran (a fire time more than MISSED_AFTER overdue) follow the schedule's
`catchup`: `none` drops them (the next future one fires), `last` starts one run for the most recent,
`all` starts one per missed time, at most MAX_CATCHUP per pass (the next pass goes on). A fire time
less overdue than that is not missed (a pass that came a little late) and fires whatever `catchup`.
A previous run of the schedule still open (pending, running or paused) meets `overlap`: `skip` starts
nothing (counted in `skippedFires`), `allow` starts the new one beside it, `cancelPrevious` cancels it first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from orchestrator import cron, instances, lifecycle
from orchestrator.errors import Conflict, InvalidTransition, OrchestratorError
from orchestrator.models import InstanceRow, ScheduleRow, utcnow
from orchestrator.outcomes import Outcome, StartInstance
from orchestrator.schedule_specs import FIRE_TIME_TAG, SCHEDULE_TAG
from orchestrator.schedules import Schedule, get, of_row
from orchestrator.states import InstanceStatus as I
from orchestrator.views import iso

log = logging.getLogger(__name__)

MISSED_AFTER = timedelta(seconds=60)
KEY_PREFIX = "schedule:"  # of the externalId of a fire time's instance
MAX_CATCHUP = 100  # fire times one schedule starts in one pass with `catchup: all`
MAX_CANCELS = 100  # open earlier runs one fire time cancels (`overlap: cancelPrevious`)
BATCH = 100  # schedules one pass handles; the rest are still due for the next
PASS_BUDGET_S = 3.0  # no schedule is started in a pass after this long (a sweep waits up to 5 s)
OPEN = (I.PENDING.value, I.RUNNING.value, I.PAUSED.value)


@dataclass
class FireReport:
    fired: int = 0  # instances created
    skipped: int = 0  # fire times not started: a previous run was open (`overlap: skip`)
    missed: int = 0  # fire times dropped by `catchup`
    failed: int = 0  # fire times whose instance could not be created (e.g. the input no longer fits)
    # (catchup of the schedule, seconds from the fire time to the instance's creation) per instance
    lags: list[tuple[str, float]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    fire: list[datetime]  # the fire times to start, ascending
    missed: int  # due fire times dropped (at least this many)
    next_fire_at: datetime | None  # where `next_fire_at` goes once they are started


def external_id(name: str, fire_time: datetime) -> str:
    """The instance key of one fire time; fixed width, so keys of one schedule sort by fire time.
    Requests cannot take a key with this prefix (api/requests.py)."""
    return f"{KEY_PREFIX}{name}:{fire_time.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"


def plan(schedule: Schedule, now: datetime) -> Plan:
    """Which of the schedule's due fire times (from `next_fire_at` up to `now`) to start."""
    spec, first = schedule.spec, schedule.next_fire_at
    if first is None or first > now:
        return Plan([], 0, first)
    if spec.catchup == "all":
        due = [first]
        times = cron.fire_times(spec.cron, spec.timezone, first)
        following = next(times, None)
        while following is not None and following <= now and len(due) < MAX_CATCHUP:
            due.append(following)
            following = next(times, None)
        return Plan(due, 0, following)
    latest = cron.last_at_or_before(spec.cron, spec.timezone, now)
    if latest is None or latest < first:  # `first` is a fire time at or before now: never go back
        latest = first
    following = cron.next_after(spec.cron, spec.timezone, latest)
    if spec.catchup == "none" and now - latest > MISSED_AFTER:
        return Plan([], 1 + (latest > first), following)
    return Plan([latest], int(latest > first), following)


def fire_due(engine: Engine, now: datetime | None = None) -> FireReport:
    """Start what every due, unpaused schedule calls for and advance its `next_fire_at`. One schedule
    that fails is logged and the others still fire. The report's outcomes are to send after."""
    now = now or utcnow()
    report = FireReport()
    with engine.connect() as conn:
        rows = conn.execute(
            select(ScheduleRow)
            .where(ScheduleRow.paused.is_(False), ScheduleRow.next_fire_at <= now)
            .order_by(ScheduleRow.next_fire_at)
            .limit(BATCH)
        ).all()
    # the pass holds the sweep's lock: past its budget the rest stay due for the next pass, and a
    # sweep waiting for the lock gets it
    deadline = time.monotonic() + PASS_BUDGET_S
    for row in rows:
        try:
            _fire(engine, of_row(row), now, report)
        except Exception:
            log.exception("schedule %s: firing failed; it stays due", row.name)
            report.failed += 1
        if time.monotonic() > deadline:
            break
    return report


def _fire(engine: Engine, schedule: Schedule, now: datetime, report: FireReport) -> None:
    name = schedule.spec.name
    decided = plan(schedule, now)
    mine = FireReport(missed=decided.missed)
    last_instance = schedule.last_instance_id
    for fire_time in decided.fire:
        try:
            instance_id = _start(engine, schedule, fire_time, mine, guard=_unchanged(schedule))
        except ScheduleChanged:
            # paused, changed or deleted since this pass read it: what the user did after the read
            # stands (the compare-and-set below fails too, and the next pass plans anew)
            log.info("schedule %s: changed while firing; this pass leaves it", name)
            _add_created(report, mine)
            return
        except OrchestratorError as exc:  # the workflow or its inputs changed under the schedule
            log.error("schedule %s: the run of %s was not created: %s", name, iso(fire_time), exc.message)
            mine.failed += 1
            continue
        last_instance = instance_id or last_instance
    if decided.missed:
        catchup = schedule.spec.catchup
        log.warning("schedule %s: %d missed fire time(s) dropped (catchup %s)", name, decided.missed, catchup)
    values: dict[str, Any] = {"next_fire_at": decided.next_fire_at, "last_instance_id": last_instance}
    if decided.fire:
        values["last_fire_at"] = decided.fire[-1]
    if mine.skipped:
        values["skipped_fires"] = ScheduleRow.skipped_fires + mine.skipped
    with engine.begin() as conn:
        won = conn.execute(
            update(ScheduleRow)
            .where(ScheduleRow.name == name, ScheduleRow.next_fire_at == schedule.next_fire_at)
            .values(**values)
        ).rowcount
    _add_created(report, mine)
    if won:  # a pass that lost the compare-and-set counts nothing the winner counts too
        report.skipped += mine.skipped
        report.missed += mine.missed
        report.failed += mine.failed


def _add_created(report: FireReport, mine: FireReport) -> None:
    """What the instances created by this pass count (their starts, fires and lags), whoever
    advanced the schedule's row: each was created once, here."""
    report.outcomes += mine.outcomes
    report.fired += mine.fired
    report.lags += mine.lags


def _open_previous(engine: Engine, schedule: Schedule, key: str, limit: int) -> list[str]:
    """Open instances of this schedule fired before `key`'s fire time (at most `limit`, oldest first)."""
    name = schedule.spec.name
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(InstanceRow.id)
                .where(
                    InstanceRow.workflow_name == schedule.spec.workflow,
                    InstanceRow.external_id.startswith(f"{KEY_PREFIX}{name}:", autoescape=True),
                    InstanceRow.external_id < key,
                    InstanceRow.status.in_(OPEN),
                )
                .order_by(InstanceRow.external_id)
                .limit(limit)
            ).scalars()
        )


class ScheduleChanged(Exception):
    """The schedule is not as the pass read it (paused, changed, deleted): its fire time waits."""


def _unchanged(schedule: Schedule) -> Callable[[Connection], None]:
    """A guard for the create's transaction: the schedule row, locked, is still the one the pass
    read, so a pause or a change that returned to its client is never followed by an old fire."""

    def guard(conn: Connection) -> None:
        row = conn.execute(
            select(ScheduleRow.paused, ScheduleRow.next_fire_at, ScheduleRow.updated_at)
            .where(ScheduleRow.name == schedule.spec.name)
            .with_for_update()
        ).first()
        read = (schedule.next_fire_at, schedule.updated_at)
        if row is None or row.paused or (row.next_fire_at, row.updated_at) != read:
            raise ScheduleChanged(schedule.spec.name)

    return guard


def _start(
    engine: Engine,
    schedule: Schedule,
    fire_time: datetime,
    report: FireReport,
    guard: Callable[[Connection], None] | None = None,
) -> str | None:
    """Create (or find) the instance of one fire time, after `overlap` is applied; None if skipped."""
    spec = schedule.spec
    key = external_id(spec.name, fire_time)
    # `allow` needs none of them and `skip` one; a cancel takes a bounded number per fire time (the
    # next fire time cancels what is still open)
    limit = {"allow": 0, "skip": 1}.get(spec.overlap, MAX_CANCELS)
    previous = _open_previous(engine, schedule, key, limit) if limit else []
    if previous and spec.overlap == "skip":
        when = iso(fire_time)
        log.info("schedule %s: %s skipped, a previous run is still open (%s)", spec.name, when, previous[0])
        report.skipped += 1
        return None
    if previous and spec.overlap == "cancelPrevious":
        for instance_id in previous:
            try:
                reason = f"cancelled by schedule {spec.name}: the run of {iso(fire_time)} replaces it"
                report.outcomes.append(lifecycle.cancel(engine, instance_id, reason))
            except InvalidTransition:  # it ended meanwhile
                pass
    request = instances.InstanceRequest(
        workflow=spec.workflow,
        version=spec.version,
        input=spec.input,
        priority=spec.priority,
        external_id=key,
        tags={**spec.tags, SCHEDULE_TAG: spec.name, FIRE_TIME_TAG: str(iso(fire_time))},
        created_by=f"schedule:{spec.name}",
        guard=guard,
    )
    created = instances.create_instance(engine, request)
    if created.created:
        report.fired += 1
        report.lags.append((spec.catchup, max(0.0, (utcnow() - fire_time).total_seconds())))
        report.outcomes.append(Outcome(starts=[StartInstance(created.instance_id, spec.priority)]))
    return created.instance_id


def trigger(engine: Engine, name: str) -> tuple[str, FireReport]:
    """Fire the schedule now, paused or not, leaving its next fire time as it is: (the instance's id,
    what to send). `overlap` applies; with `skip` and a previous run open it raises Conflict (409).
    Raises NotFound, and ValidationError when the workflow no longer takes the schedule's input."""
    schedule = get(engine, name)
    now = utcnow()
    report = FireReport()
    instance_id = _start(engine, schedule, now, report)
    if instance_id is None:
        raise Conflict(f"schedule {name!r} has a previous run still open, and its overlap is skip")
    with engine.begin() as conn:
        conn.execute(
            update(ScheduleRow)
            .where(ScheduleRow.name == name)
            .values(last_fire_at=now, last_instance_id=instance_id)
        )
    return instance_id, report
