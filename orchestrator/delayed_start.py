"""Delayed start: an instance created with a `startAt` to come stays `pending` until then.

Its start is requested for that time (`start_requested_at` = `start_at`, written at create) and no
`schedule` message is sent at create, or one with a countdown for a start that close
(`PROMPT_START_UP_TO`); `scheduling.start` refuses to start it before its time, so an early message
changes nothing. The recovery sweep starts the instances whose time has come (`start_due`): the
guarantee, within one sweep interval of `startAt`, also after every process was down. A manual
start (`POST .../start`) starts it at once.
"""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, and_, or_, select

from orchestrator import due_rows, scheduling
from orchestrator.models import InstanceRow, utcnow
from orchestrator.outcomes import Outcome
from orchestrator.states import InstanceStatus as I

BATCH = 500
# a start this close (s) also gets a `schedule` message with a countdown, for a prompt start; a later
# one is left to the sweep (as for a sleep: `nodes/sleep.py`, PROMPT_WAKE_UP_TO)
PROMPT_START_UP_TO = 300.0


def delayed(now: datetime, wanted: bool = True) -> ColumnElement[bool]:
    """SQL, on `InstanceRow`: pending instances whose startAt is still to come (`wanted` false: every
    other instance)."""
    if wanted:
        return and_(InstanceRow.status == I.PENDING.value, InstanceRow.start_at > now)
    return or_(
        InstanceRow.status != I.PENDING.value, InstanceRow.start_at.is_(None), InstanceRow.start_at <= now
    )


def start_due(engine: Engine) -> list[Outcome]:
    """Start the delayed instances whose startAt has come (`due_rows.drain`). Only those whose
    start was requested for their startAt: one created with `start: false` waits for a manual start,
    and one with a past startAt was sent its `schedule` at create (the lost-start sweep covers it)."""

    def due() -> list[str]:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    select(InstanceRow.id)
                    .where(
                        InstanceRow.status == I.PENDING.value,
                        InstanceRow.start_at <= utcnow(),
                        InstanceRow.start_requested_at == InstanceRow.start_at,
                        # one with a concurrency key is started per key (`key_limits.start_free`)
                        InstanceRow.concurrency_key.is_(None),
                    )
                    .order_by(InstanceRow.start_at)
                    .limit(BATCH)
                ).scalars()
            )

    act = functools.partial(scheduling.start, engine)
    return due_rows.drain(due, act, lambda instance_id: instance_id, BATCH, "delayed instance")
