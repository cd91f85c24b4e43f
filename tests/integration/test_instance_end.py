"""One way an instance ends: a cancel goes through the same end as a completion, a failure and a
timeout (finish time, error, callback delivery, log line, the `Finished` the edges act on)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from orchestrator import catalog, lifecycle, scheduling
from orchestrator.errors import InvalidTransition
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.models import InstanceRow, LogRow, NodeRow

DEFINITION = {
    "name": "instance-end",
    "version": "1.0.0",
    "nodes": [{"id": "a", "type": "task", "executor": "noop"}],
}


def test_a_cancel_ends_the_instance_as_every_end_does(db: Engine) -> None:
    catalog.save_definition(db, DEFINITION)
    request = InstanceRequest("instance-end", callback_url="http://127.0.0.1:9/hook", start=False)
    instance_id = create_instance(db, request).instance_id
    scheduling.start(db, instance_id)

    outcome = lifecycle.cancel(db, instance_id, reason="no longer needed")

    assert outcome.finished is not None
    assert (outcome.finished.status, outcome.finished.callback_url) == (
        "cancelled",
        "http://127.0.0.1:9/hook",
    )
    with db.connect() as conn:
        row = conn.execute(
            select(
                InstanceRow.status,
                InstanceRow.finished_at,
                InstanceRow.error,
                InstanceRow.callback_state,
                InstanceRow.callback_due_at,
            ).where(InstanceRow.id == instance_id)
        ).one()
        node = conn.execute(select(NodeRow.status).where(NodeRow.instance_id == instance_id)).scalar_one()
        (line,) = conn.execute(
            select(LogRow.level, LogRow.details).where(
                LogRow.instance_id == instance_id, LogRow.message == "instance cancelled"
            )
        ).all()
    assert row.status == "cancelled" and row.finished_at is not None and node == "cancelled"
    assert row.error == {"code": "CANCELLED", "message": "no longer needed"}
    assert row.callback_state is not None and row.callback_due_at is not None
    assert line.level == "info" and line.details["error"] == row.error

    with pytest.raises(InvalidTransition):
        lifecycle.cancel(db, instance_id)
