"""Stored schedules: create, read, change, pause, resume and delete (`/api/v1/schedules`).

A schedule names a workflow (and optionally a version), its input and options, and a cron expression
in a time zone. `next_fire_at` is the next fire time not yet handled; `schedule_firing.py` fires it
and advances it. Every change here that moves the fire time (a new cron or zone, a resume) computes
it afresh from now: a paused schedule has none, and one resumed does not make up for its pause.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from orchestrator import catalog, cron, required_inputs
from orchestrator.errors import Conflict, NotFound, Problem, ValidationError, WorkflowNotFound
from orchestrator.inputs import validate_input
from orchestrator.models import ScheduleRow, utcnow
from orchestrator.schedule_specs import ScheduleSpec, spec_from_body
from orchestrator.views import iso


@dataclass(frozen=True)
class Schedule:
    """A stored schedule: what the client asked for and where its firing stands."""

    spec: ScheduleSpec
    next_fire_at: datetime | None
    last_fire_at: datetime | None
    last_instance_id: str | None
    skipped_fires: int
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        s = self.spec
        return {
            "name": s.name,
            "workflow": s.workflow,
            "version": s.version,
            "cron": s.cron,
            "timezone": s.timezone,
            "input": s.input,
            "priority": s.priority,
            "tags": s.tags,
            "overlap": s.overlap,
            "catchup": s.catchup,
            "paused": s.paused,
            "nextFireAt": iso(self.next_fire_at),
            "lastFireAt": iso(self.last_fire_at),
            "lastInstanceId": self.last_instance_id,
            "skippedFires": self.skipped_fires,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }


_SPEC_COLUMNS = ("name", "workflow", "version", "cron", "timezone", "input", "priority", "tags", "overlap")


def of_row(row: Any) -> Schedule:
    spec = ScheduleSpec(
        **{column: getattr(row, column) for column in _SPEC_COLUMNS},
        catchup=row.catchup,
        paused=bool(row.paused),
    )
    return Schedule(
        spec,
        row.next_fire_at,
        row.last_fire_at,
        row.last_instance_id,
        row.skipped_fires,
        row.created_at,
        row.updated_at,
    )


def _check_target(engine: Engine, spec: ScheduleSpec) -> None:
    """422 unless the workflow (at the version, if one is named) exists and takes the input."""
    try:
        stored = catalog.get_definition(engine, spec.workflow, spec.version)
    except WorkflowNotFound as exc:  # a request field that names nothing: 422, not the path's 404
        problems = exc.problems or [Problem("workflow", "not found", "WORKFLOW_NOT_FOUND")]
        raise ValidationError(exc.message, problems) from None
    data = validate_input(stored.definition.inputs, spec.input)
    required_inputs.check(stored.definition, data)


def _next_fire(spec: ScheduleSpec, after: datetime) -> datetime | None:
    return None if spec.paused else cron.next_after(spec.cron, spec.timezone, after)


def _values(spec: ScheduleSpec) -> dict[str, Any]:
    values = spec.as_body()
    values["version"] = None if spec.version == "latest" else spec.version
    return values


def create(engine: Engine, body: Any) -> Schedule:
    """Validate and store a new schedule. Raises ValidationError (422, naming the field) and
    Conflict (409) when a schedule of that name exists."""
    spec = spec_from_body(body)
    _check_target(engine, spec)
    now = utcnow()
    values = {**_values(spec), "next_fire_at": _next_fire(spec, now), "created_at": now, "updated_at": now}
    try:
        with engine.begin() as conn:
            conn.execute(insert(ScheduleRow), values)
    except IntegrityError:
        raise Conflict(
            f"a schedule named {spec.name!r} exists", [Problem("name", "already exists", "CONFLICT")]
        ) from None
    return get(engine, spec.name)


def get(engine: Engine, name: str) -> Schedule:
    """Raises NotFound."""
    with engine.connect() as conn:
        row = conn.execute(select(ScheduleRow).where(ScheduleRow.name == name)).first()
    if row is None:
        raise NotFound(f"no schedule named {name!r}")
    return of_row(row)


def list_page(engine: Engine, limit: int, after: str | None = None) -> tuple[list[Schedule], str | None]:
    """Up to `limit` schedules by name, after the name `after`; and the name to ask the next page
    after (None on the last page)."""
    statement = select(ScheduleRow).order_by(ScheduleRow.name).limit(limit + 1)
    if after is not None:
        statement = statement.where(ScheduleRow.name > after)
    with engine.connect() as conn:
        page = [of_row(row) for row in conn.execute(statement)]
    if len(page) <= limit:
        return page, None
    return page[:limit], page[limit - 1].spec.name


def change(engine: Engine, name: str, patch: Any) -> Schedule:
    """Change the fields `patch` names (null resets one to its default). A new cron, zone or
    pause state computes the next fire time from now. Raises NotFound, ValidationError, and
    Conflict when the schedule changed meanwhile (the update is a compare-and-set on `updated_at`)."""
    current = get(engine, name)
    if not isinstance(patch, dict):
        raise ValidationError("invalid schedule", [Problem("body", "must be an object", "TYPE_MISMATCH")])
    if patch.get("name", name) != name:
        raise ValidationError("invalid schedule", [Problem("name", "cannot be changed", "VALIDATION_ERROR")])
    merged = {**current.spec.as_body(), **patch}
    for field in [key for key, value in patch.items() if value is None]:
        merged.pop(field)  # null: back to the default
    spec = spec_from_body(merged)
    _check_target(engine, spec)
    now = utcnow()
    values: dict[str, Any] = {**_values(spec), "updated_at": now}
    old = current.spec
    if (spec.cron, spec.timezone, spec.paused) != (old.cron, old.timezone, old.paused):
        values["next_fire_at"] = _next_fire(spec, now)
    with engine.begin() as conn:
        changed = conn.execute(
            update(ScheduleRow)
            .where(ScheduleRow.name == name, ScheduleRow.updated_at == current.updated_at)
            .values(**values)
        ).rowcount
    if not changed:
        raise Conflict(f"schedule {name!r} changed meanwhile; read it again and retry")
    return get(engine, name)


def set_paused(engine: Engine, name: str, paused: bool) -> Schedule:
    """Pause (no fire time) or resume (the next fire time after now). Pausing a paused schedule or
    resuming a running one changes nothing. Raises NotFound."""
    current = get(engine, name)
    if current.spec.paused == paused:
        return current
    now = utcnow()
    spec = current.spec
    next_fire = None if paused else cron.next_after(spec.cron, spec.timezone, now)
    with engine.begin() as conn:
        conn.execute(
            update(ScheduleRow)
            .where(ScheduleRow.name == name, ScheduleRow.paused == (not paused))
            .values(paused=paused, next_fire_at=next_fire, updated_at=now)
        )
    return get(engine, name)


def remove(engine: Engine, name: str) -> Schedule:
    """Delete the schedule (its instances stay); what it was. Raises NotFound."""
    removed = get(engine, name)
    with engine.begin() as conn:
        if not conn.execute(delete(ScheduleRow).where(ScheduleRow.name == name)).rowcount:
            raise NotFound(f"no schedule named {name!r}")
    return removed
