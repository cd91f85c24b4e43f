"""The sweep resends a queued node's message only when it is gone: never while messages wait on the
node's queue in Redis, once per window when nothing waits, with copies backing off, and blind only a
few at a time when the broker cannot count. Messages are really sent to Redis; no worker consumes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from orchestrator import catalog, recovery, resends, scheduling
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.models import LogRow, NodeRow, utcnow
from orchestrator.outcomes import Dispatch
from workers import broker_probe, dispatch
from workers.delivery import DELIVERY_SETTINGS

WINDOW = 3.0


def _definition(name: str, width: int = 1, queue: str | None = None) -> dict[str, Any]:
    extra = {"queue": queue} if queue else {}
    nodes = [{"id": f"n{i}", "type": "task", "executor": "noop", **extra} for i in range(width)]
    return {"name": name, "version": "1.0.0", "nodes": nodes}


def _queued(
    db: Engine, name: str, width: int = 1, queue: str | None = None, priority: str = "normal"
) -> list[Dispatch]:
    """Nodes of a new running instance, queued in MySQL; their messages are not sent yet."""
    catalog.save_definition(db, _definition(name, width, queue))
    instance_id = create_instance(db, InstanceRequest(name, start=False, priority=priority)).instance_id
    return scheduling.start(db, instance_id).dispatches


def _lists(queue: str) -> list[str]:
    """The Redis lists kombu keeps a queue in: one per priority step past the first, `<queue><sep><step>`."""
    options = DELIVERY_SETTINGS["broker_transport_options"]
    return [queue] + [f"{queue}{options['sep']}{step}" for step in options["priority_steps"][1:]]


def _lose_messages(redis_client: Any, queue: str) -> None:
    redis_client.delete(*_lists(queue))
    assert broker_probe.count_waiting([queue]) == {queue: 0}


def _age(db: Engine, seconds: float, column: str = "queued_at") -> None:
    """Set a clock of every queued node `seconds` into the past; for `resent_at`, the node's queueing
    goes a second further back (a copy is always sent after the queueing it belongs to)."""
    then = utcnow() - timedelta(seconds=seconds)
    values = {column: then}
    if column == "resent_at":
        values["queued_at"] = then - timedelta(seconds=1)
    with db.begin() as conn:
        conn.execute(update(NodeRow).where(NodeRow.status == "queued").values(**values))


def _sweep(db: Engine) -> list[tuple[str, int]]:
    report = recovery.sweep(db, WINDOW, count_waiting=broker_probe.count_waiting)
    assert report.failed == []
    return sorted((d.node_id, d.attempt) for d in report.dispatches)


def _copies(db: Engine) -> dict[str, int]:
    with db.connect() as conn:
        return {row.node_id: row.resends for row in conn.execute(select(NodeRow.node_id, NodeRow.resends))}


def test_the_probe_counts_every_priority_list_of_a_queue(db, redis_client):
    dispatch.send_nodes(
        _queued(db, "probe-low", priority="low") + _queued(db, "probe-top", priority="critical")
    )
    assert {k.decode() for k in redis_client.keys("default*")} <= set(_lists("default"))
    assert len(redis_client.keys("default*")) == 2  # two priority steps, two lists
    assert broker_probe.count_waiting(["default", "nowhere"]) == {"default": 2, "nowhere": 0}


def test_a_node_whose_message_waits_on_its_queue_is_never_resent(db):
    dispatch.send_nodes(_queued(db, "waits"))
    _age(db, 100 * WINDOW)  # however long it has waited: a backlog, not a loss
    assert _sweep(db) == []
    assert _copies(db) == {"n0": 0}


def test_a_lost_message_is_resent_once_and_the_next_copy_backs_off(db, redis_client):
    (first,) = _queued(db, "lost")
    dispatch.send_nodes([first])
    _lose_messages(redis_client, "default")
    _age(db, WINDOW / 2)
    assert _sweep(db) == []  # it may still be on its way
    _age(db, WINDOW + 1)
    assert _sweep(db) == [("n0", first.attempt)]  # the same attempt: one of the two claims wins
    assert _copies(db) == {"n0": 1}
    assert _sweep(db) == []  # one copy per window
    with db.connect() as conn:
        (line,) = conn.execute(select(LogRow.message).where(LogRow.message.like("%presumed lost%"))).scalars()
    assert "nothing waits on queue default" in line and "copy 1" in line

    _age(db, 100 * WINDOW, "resent_at")
    dispatch.send_nodes([first])  # the copy waits on the queue: no further copy, however long
    assert _sweep(db) == []
    _lose_messages(redis_client, "default")  # the copy is lost too
    _age(db, 1.5 * WINDOW, "resent_at")
    assert _sweep(db) == []  # the second copy waits two windows after the first
    _age(db, 2 * WINDOW + 1, "resent_at")
    assert _sweep(db) == [("n0", first.attempt)]
    assert _copies(db) == {"n0": 2}


def test_a_node_queued_again_starts_its_copies_afresh(db, redis_client):
    (first,) = _queued(db, "again")
    _age(db, WINDOW + 1)
    assert _sweep(db) == [("n0", first.attempt)]
    held = scheduling.claim(db, first.instance_id, "n0", first.attempt, "w-1", first.facts())
    assert held is not None
    (back,) = recovery.hand_back_held(db, held, "a test").dispatches
    now = utcnow()
    with db.begin() as conn:  # one window after the new queueing, whose copy came before it
        conn.execute(
            update(NodeRow).values(
                queued_at=now - timedelta(seconds=WINDOW + 1), resent_at=now - timedelta(seconds=WINDOW + 2)
            )
        )
    assert _sweep(db) == [("n0", back.attempt)]
    assert _copies(db) == {"n0": 1}


def test_a_node_due_after_a_retry_delay_counts_from_when_it_is_due(db):
    _queued(db, "delayed")  # never sent: as if lost
    _age(db, 100 * WINDOW)
    later = utcnow() + timedelta(seconds=WINDOW)
    with db.begin() as conn:
        conn.execute(update(NodeRow).values(not_before=later))
    assert _sweep(db) == []  # not due
    _age(db, WINDOW / 2, "not_before")
    assert _sweep(db) == []  # due, and its countdown message may be on its way
    _age(db, WINDOW + 1, "not_before")
    assert [node for node, _ in _sweep(db)] == ["n0"]


def test_a_busy_queue_does_not_hide_a_lost_message_on_another_queue(db, monkeypatch):
    dispatch.send_nodes(_queued(db, "busy", width=5))
    _queued(db, "quiet", queue="elsewhere")  # never sent
    _age(db, WINDOW + 1)
    monkeypatch.setattr(recovery, "BATCH", 3)  # fewer than the busy queue's candidates
    report = recovery.sweep(db, WINDOW, count_waiting=broker_probe.count_waiting)
    assert [(d.node_id, d.queue) for d in report.dispatches] == [("n0", "elsewhere")]


@pytest.mark.parametrize("counter", ["none", "failing", "uncounted"])
def test_without_counts_the_sweep_resends_a_few_per_queue_and_sweep(db, counter):
    def failing(_queues: object) -> dict[str, int | None]:
        raise ConnectionError("the broker went away")

    count_waiting = {"none": None, "failing": failing, "uncounted": lambda qs: dict.fromkeys(qs)}[counter]
    width = 2 * resends.BLIND_PER_QUEUE + 5
    dispatch.send_nodes(_queued(db, "blind", width=width))  # all waiting: the sweep cannot know
    _age(db, WINDOW + 1)
    per_sweep = [len(recovery.sweep(db, WINDOW, count_waiting=count_waiting).dispatches) for _ in range(4)]
    assert per_sweep == [resends.BLIND_PER_QUEUE, resends.BLIND_PER_QUEUE, 5, 0]
    assert set(_copies(db).values()) == {1}
