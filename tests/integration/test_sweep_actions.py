"""One recovery action that fails does not stop the others: the sweep logs it, names it in its
report and still hands nodes back (a query that fails on one database must not stop all recovery)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from orchestrator import catalog, recovery, scheduling
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.models import NodeRow, utcnow

ONE_NODE = {
    "name": "sweep-actions",
    "version": "1.0.0",
    "nodes": [{"id": "a", "type": "task", "executor": "noop"}],
}


def test_a_failing_action_is_reported_and_the_other_actions_still_run(db, monkeypatch, caplog):
    catalog.save_definition(db, ONE_NODE)
    instance_id = create_instance(db, InstanceRequest("sweep-actions", start=False)).instance_id
    (d,) = scheduling.start(db, instance_id).dispatches
    assert scheduling.claim(db, instance_id, "a", d.attempt, "dead-worker", d.facts()) is not None
    with db.begin() as conn:
        conn.execute(update(NodeRow).values(heartbeat_at=utcnow() - timedelta(seconds=10)))

    def broken(*_args: object) -> None:
        raise RuntimeError("this query does not work here")

    monkeypatch.setattr(recovery, "mark_silent_workers_gone", broken)  # runs before the hand-backs
    monkeypatch.setattr(recovery, "resend_lost_queued", broken)  # runs after them
    report = recovery.sweep(db, 3.0)

    assert report.failed == ["_mark_gone", "_resend_queued"]
    assert report.handed_back == 1
    assert [(x.node_id, x.attempt) for x in report.dispatches] == [("a", 2)]
    assert "recovery action _resend_queued failed" in caplog.text


def test_every_action_runs_cleanly_on_mariadb(db):
    assert recovery.sweep(db, 3.0).failed == []


def test_a_message_the_sweep_cannot_send_does_not_stop_the_others(monkeypatch, caplog):
    from orchestrator import callbacks
    from orchestrator.outcomes import Outcome
    from workers import beat

    sent: list[object] = []

    def follow_up(outcome: Outcome) -> None:
        if not sent:
            sent.append("refused")
            raise ConnectionError("the broker went away")
        sent.append(outcome)

    monkeypatch.setattr(beat, "follow_up", follow_up)
    monkeypatch.setattr(
        beat.dispatch, "send_notify", lambda instance_id, seen: sent.append((instance_id, seen))
    )
    first, second = Outcome(), Outcome()
    report = recovery.SweepReport(outcomes=[first, second], overdue_callbacks=[callbacks.Overdue("i-1", 2)])
    beat._send_all(report)
    assert sent == ["refused", second, ("i-1", 2)]
    assert "could not be sent" in caplog.text
