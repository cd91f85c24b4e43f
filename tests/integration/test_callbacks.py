"""Callback deliveries as stored state: due when an instance with a callbackUrl ends (also by cancel),
attempts taken once each, settled, and resent by the sweep once per window when left overdue."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from orchestrator import callbacks, catalog, lifecycle, recovery
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.models import InstanceRow, utcnow
from tests.acceptance.helpers import run_here

FLAKY = {
    "name": "called-back-flaky",
    "version": "1.0.0",
    "nodes": [{"id": "a", "type": "task", "executor": "tests.flaky", "config": {"failures": 1}}],
}
ONE_NODE = {
    "name": "called-back",
    "version": "1.0.0",
    "nodes": [{"id": "a", "type": "task", "executor": "noop"}],
}
URL = "http://127.0.0.1:9/hook"


def _run_to_the_end(db: Engine, callback_url: str | None = URL) -> str:
    """An instance run in this process: it ends, and no `notify` message is ever sent for it."""
    catalog.save_definition(db, ONE_NODE)
    request = InstanceRequest("called-back", callback_url=callback_url, start=False)
    instance_id = create_instance(db, request).instance_id
    run_here(db, instance_id)
    return instance_id


def _delivery(db: Engine, instance_id: str) -> Any:
    with db.connect() as conn:
        return conn.execute(
            select(
                InstanceRow.status,
                InstanceRow.callback_state,
                InstanceRow.callback_attempts,
                InstanceRow.callback_due_at,
            ).where(InstanceRow.id == instance_id)
        ).one()


def _overdue_by(db: Engine, instance_id: str, seconds: float) -> None:
    with db.begin() as conn:
        due = utcnow() - timedelta(seconds=seconds)
        conn.execute(update(InstanceRow).where(InstanceRow.id == instance_id).values(callback_due_at=due))


def test_an_instance_that_ends_with_a_callback_url_has_its_delivery_due(db):
    before = utcnow()
    with_url = _delivery(db, _run_to_the_end(db))
    assert with_url.status == "completed" and with_url.callback_state == "pending"
    assert with_url.callback_attempts == 0 and before <= with_url.callback_due_at <= utcnow()
    without = _delivery(db, _run_to_the_end(db, callback_url=None))
    assert without.status == "completed" and without.callback_state is None


def test_a_cancelled_instance_has_its_delivery_due_too(db):
    catalog.save_definition(db, ONE_NODE)
    instance_id = create_instance(db, InstanceRequest("called-back", callback_url=URL)).instance_id
    lifecycle.cancel(db, instance_id)
    assert tuple(_delivery(db, instance_id))[:3] == ("cancelled", "pending", 0)


def test_each_attempt_is_taken_once_and_pushes_the_due_time_past_its_retry(db):
    instance_id = _run_to_the_end(db)
    first = callbacks.take_attempt(db, instance_id, seen=0)
    assert first is not None and first.number == 1
    assert _delivery(db, instance_id).callback_due_at >= utcnow() + timedelta(
        seconds=callbacks.REQUEST_TIMEOUT_S
    )
    # copies of the same message (a resend racing a slow one) make one attempt between them
    assert callbacks.take_attempt(db, instance_id, seen=0) is None
    second = callbacks.take_attempt(db, instance_id, seen=1)
    assert second is not None and second.number == 2
    callbacks.settle(db, instance_id, first, callbacks.DELIVERED)  # a stale attempt settles nothing
    assert _delivery(db, instance_id).callback_state == "pending"
    callbacks.settle(db, instance_id, second, callbacks.DELIVERED)
    assert callbacks.take_attempt(db, instance_id, seen=2) is None  # nothing left to deliver
    settled = _delivery(db, instance_id)
    assert settled.callback_state == "delivered" and settled.callback_attempts == 2


def test_attempts_that_never_answered_still_run_out(db):
    instance_id = _run_to_the_end(db)
    for seen in range(callbacks.MAX_ATTEMPTS):  # each one's worker died before it could settle
        assert callbacks.take_attempt(db, instance_id, seen=seen) is not None
    assert callbacks.take_attempt(db, instance_id, seen=callbacks.MAX_ATTEMPTS) is None
    assert _delivery(db, instance_id).callback_state == "failed"


def test_a_retried_instance_drops_the_old_delivery_and_its_next_end_has_its_own(db):
    catalog.save_definition(db, FLAKY)
    request = InstanceRequest("called-back-flaky", callback_url=URL, start=False)
    instance_id = create_instance(db, request).instance_id
    run_here(db, instance_id)
    assert tuple(_delivery(db, instance_id))[:2] == ("failed", "pending")
    old = callbacks.take_attempt(db, instance_id, seen=0)
    assert old is not None
    again = lifecycle.retry(db, instance_id)  # node `a` queued again, run below
    assert tuple(_delivery(db, instance_id))[1:3] == (None, 0)
    assert callbacks.take_attempt(db, instance_id, seen=1) is None  # the old delivery is gone
    run_here(db, instance_id, first=again)
    assert tuple(_delivery(db, instance_id))[:3] == ("completed", "pending", 0)
    new = callbacks.take_attempt(db, instance_id, seen=0)
    assert new is not None and new.number == old.number == 1  # only the end tells them apart
    callbacks.settle(db, instance_id, old, callbacks.DELIVERED)  # the old end's attempt settles nothing
    assert _delivery(db, instance_id).callback_state == "pending"
    callbacks.settle(db, instance_id, new, callbacks.DELIVERED)
    assert _delivery(db, instance_id).callback_state == "delivered"


def test_a_message_from_before_the_upgrade_takes_over_an_instance_without_a_stored_delivery(db):
    instance_id = _run_to_the_end(db)
    with db.begin() as conn:  # as migration 0003 leaves an instance that had ended before it
        conn.execute(update(InstanceRow).where(InstanceRow.id == instance_id).values(callbacks.CLEARED))
    attempt = callbacks.take_attempt(db, instance_id, seen=None)  # an old `notify(instance_id)`
    assert attempt is not None and attempt.number == 1
    assert tuple(_delivery(db, instance_id))[1:3] == ("pending", 1)


def test_an_overdue_delivery_is_resent_by_the_sweep_once_per_window(db):
    instance_id = _run_to_the_end(db)
    assert recovery.sweep(db, 3.0).overdue_callbacks == []  # due just now: its `notify` may be on its way
    _overdue_by(db, instance_id, 4)
    assert recovery.sweep(db, 3.0).overdue_callbacks == [callbacks.Overdue(instance_id, 0)]
    assert recovery.sweep(db, 3.0).overdue_callbacks == []  # resent: due again from now
    assert callbacks.take_attempt(db, instance_id, seen=0) is not None
    _overdue_by(db, instance_id, 4)
    assert recovery.sweep(db, 3.0).overdue_callbacks == [callbacks.Overdue(instance_id, 1)]
    with db.begin() as conn:
        conn.execute(update(InstanceRow).where(InstanceRow.id == instance_id).values(callback_state="failed"))
    _overdue_by(db, instance_id, 4)
    assert recovery.sweep(db, 3.0).overdue_callbacks == []  # given up: never resent


def test_a_delivery_attempted_after_the_sweep_looked_is_not_restarted(db, monkeypatch):
    instance_id = _run_to_the_end(db)
    _overdue_by(db, instance_id, 4)
    with db.connect() as conn:
        seen_by_the_sweep = callbacks._overdue_rows(conn, utcnow(), 10)  # overdue, 0 attempts...
    assert callbacks.take_attempt(db, instance_id, seen=0) is not None  # ...then a slow notify made one
    due = _delivery(db, instance_id).callback_due_at
    monkeypatch.setattr(callbacks, "_overdue_rows", lambda *_: seen_by_the_sweep)
    assert callbacks.overdue(db, 3.0, 10) == []
    assert _delivery(db, instance_id).callback_due_at == due  # the attempt's retry time stands
