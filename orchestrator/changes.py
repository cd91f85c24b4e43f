"""Change marks: a small value per instance that differs whenever anything an event stream sends changed.

An event stream (`api/events.py`) sends node states, log lines and the status object. Reading all of
that every half second for every open stream costs four queries per stream per poll; instead, one
process reads the marks of all the instances its streams watch in three grouped queries per tick,
and only a stream whose instance's mark moved reads the rest.

A mark holds, per instance: its status and timestamps; per node state the number of its nodes in
that state, the sum of their attempts and their latest `updated_at`; the number of its log lines and
their highest id. Every change a stream reports moves one of these: a claim or an end moves a count,
a retry or a hand-back the attempts, and a log line the line count, even one that commits after a
line with a higher id (parallel nodes), which the highest id alone would miss. Counts do not depend
on the writers' clocks, so a worker whose clock lags cannot hide a change.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Engine, case, func, select

from orchestrator.models import InstanceRow, LogRow, NodeRow
from orchestrator.states import NodeStatus

Mark = tuple[Any, ...]


def marks(engine: Engine, instance_ids: Collection[str]) -> dict[str, Mark]:
    """The mark of each of `instance_ids` that exists (an unknown id is left out)."""
    if not instance_ids:
        return {}
    ids = sorted(instance_ids)
    per_status = [func.sum(case((NodeRow.status == state.value, 1), else_=0)) for state in NodeStatus]
    with engine.connect() as conn:
        instances = conn.execute(
            select(InstanceRow.id, InstanceRow.status, InstanceRow.updated_at, InstanceRow.finished_at).where(
                InstanceRow.id.in_(ids)
            )
        ).all()
        nodes = {
            row[0]: tuple(row[1:])
            for row in conn.execute(
                select(
                    NodeRow.instance_id,
                    func.sum(NodeRow.attempt),
                    func.max(NodeRow.updated_at),
                    *per_status,
                )
                .where(NodeRow.instance_id.in_(ids))
                .group_by(NodeRow.instance_id)
            )
        }
        logs = {
            row[0]: tuple(row[1:])
            for row in conn.execute(
                select(LogRow.instance_id, func.count(), func.max(LogRow.id))
                .where(LogRow.instance_id.in_(ids))
                .group_by(LogRow.instance_id)
            )
        }
    return {
        row.id: (row.status, row.updated_at, row.finished_at, nodes.get(row.id), logs.get(row.id))
        for row in instances
    }
