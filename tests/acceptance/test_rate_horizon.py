"""A rate books only a few tokens ahead, on real workers: a higher-priority node that arrives after
a large backlog under the rate starts before the backlog's tail, not after it
(orchestrator/rate_horizon.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from orchestrator import limits
from orchestrator.models import InstanceRow, NodeRow
from tests.acceptance.helpers import define, start
from tests.support.services import wait_for

ITEMS = 60  # at the executor's 10/s: a backlog of six seconds


def _starts(engine: Engine, instance_id: str) -> list[Any]:
    with engine.connect() as conn:
        return [
            row.started_at
            for row in conn.execute(
                select(NodeRow.started_at).where(
                    NodeRow.instance_id == instance_id, NodeRow.executor == "tests.rated"
                )
            )
            if row.started_at is not None
        ]


def _booked_and_waiting(engine: Engine, instance_id: str) -> tuple[int, int]:
    """Its queued nodes under the rate: booked (admitted, a message sent), and waiting (no message)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(NodeRow.admitted_attempt, NodeRow.attempt).where(
                NodeRow.instance_id == instance_id,
                NodeRow.executor == "tests.rated",
                NodeRow.status == "queued",
            )
        ).all()
    booked = sum(1 for r in rows if r.admitted_attempt == r.attempt)
    return booked, len(rows) - booked


def _done(engine: Engine, *instance_ids: str) -> bool:
    with engine.connect() as conn:
        statuses = conn.execute(select(InstanceRow.status).where(InstanceRow.id.in_(instance_ids))).scalars()
        return all(s == "completed" for s in statuses)


def test_a_higher_priority_node_arriving_after_a_rate_backlog_starts_before_its_tail(db, live_api, processes):
    processes.worker("w1", concurrency=3)
    processes.worker("w2", concurrency=3)
    define(
        live_api,
        {
            "name": "rate-backlog",
            "version": "1.0.0",
            "nodes": [
                {"id": "list", "executor": "noop", "config": {"items": list(range(ITEMS))}},
                {
                    "id": "m",
                    "type": "map",
                    "dependsOn": ["list"],
                    "over": "${nodes.list.output.items}",
                    "maxConcurrency": ITEMS,
                    "node": {"executor": "tests.rated"},
                },
            ],
        },
    )
    define(
        live_api,
        {"name": "rate-urgent", "version": "1.0.0", "nodes": [{"id": "call", "executor": "tests.rated"}]},
    )
    backlog = start(live_api, "rate-backlog", priority="low")
    wait_for(lambda: len(_starts(db, backlog)) >= 1, 30, "the backlog's first start")
    # a few tokens are booked ahead (and a few more whose claim came before its start's turn and
    # was sent again: `admission.start_wait`); the rest of the backlog waits as rows, not as messages
    booked, waiting = _booked_and_waiting(db, backlog)
    assert booked <= 2 * limits.HORIZON_TOKENS and waiting >= ITEMS // 2, (booked, waiting)
    urgent = start(live_api, "rate-urgent", priority="critical")
    # it is booked ahead of the waiting backlog, within a few tokens of its arrival
    wait_for(lambda: _booked_and_waiting(db, urgent)[0] or _starts(db, urgent), 30, "the urgent node's token")
    _, still_waiting = _booked_and_waiting(db, backlog)
    assert still_waiting >= ITEMS // 2, still_waiting
    wait_for(lambda: _done(db, backlog, urgent), 60, "the backlog and the urgent node to complete")
    (urgent_start,) = _starts(db, urgent)
    items = sorted(_starts(db, backlog))
    assert len(items) == ITEMS
    after = sum(1 for t in items if t > urgent_start)
    print(
        f"{ITEMS} items under 10/s: {booked} booked and {waiting} waiting at the first start; a critical "
        f"node booked while {still_waiting} still waited started ahead of {after} of them"
    )
    assert after >= ITEMS // 4  # ahead of the backlog's tail
