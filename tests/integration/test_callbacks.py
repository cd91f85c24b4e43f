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
    assert callbacks.take_attempt(db, instance_id) == 1
    first = _delivery(db, instance_id)
    assert first.callback_attempts == 1
    assert first.callback_due_at >= utcnow() + timedelta(seconds=callbacks.REQUEST_TIMEOUT_S)
    assert callbacks.take_attempt(db, instance_id) == 2
    callbacks.settle(db, instance_id, callbacks.DELIVERED)
    assert callbacks.take_attempt(db, instance_id) is None  # nothing left to deliver
    settled = _delivery(db, instance_id)
    assert settled.callback_state == "delivered" and settled.callback_attempts == 2


def test_an_overdue_delivery_is_resent_by_the_sweep_once_per_window(db):
    instance_id = _run_to_the_end(db)
    assert recovery.sweep(db, 3.0).callbacks == []  # due just now: its own `notify` may be on its way
    _overdue_by(db, instance_id, 4)
    assert recovery.sweep(db, 3.0).callbacks == [instance_id]
    assert recovery.sweep(db, 3.0).callbacks == []  # resent: due again from now
    callbacks.settle(db, instance_id, callbacks.FAILED)
    _overdue_by(db, instance_id, 4)
    assert recovery.sweep(db, 3.0).callbacks == []  # given up: never resent
