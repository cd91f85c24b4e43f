"""Retention: execution logs and checkpoints of instances that ended long ago are pruned."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, delete, select

from orchestrator.db import retrying
from orchestrator.models import CheckpointRow, InstanceRow, LogRow, utcnow
from orchestrator.states import FINISHED_INSTANCE


@retrying()
def _prune_batch(engine: Engine, instance_ids: list[str], batch: int) -> int:
    removed = 0
    with engine.begin() as conn:
        for table in (LogRow, CheckpointRow):
            ids = list(
                conn.execute(
                    select(table.id).where(table.instance_id.in_(instance_ids)).limit(batch)
                ).scalars()
            )
            if ids:
                removed += conn.execute(delete(table).where(table.id.in_(ids))).rowcount
    return removed


def prune(engine: Engine, days: float, batch: int = 1000, max_batches: int = 100) -> int:
    """Delete logs and checkpoints of instances finished more than `days` ago, `batch` rows per
    transaction (short locks, small undo), at most `max_batches` per call; returns rows deleted.
    The instances and their node rows (status, outputs) are kept."""
    cutoff = utcnow() - timedelta(days=days)
    with engine.connect() as conn:
        instance_ids = list(
            conn.execute(
                select(InstanceRow.id)
                .where(
                    InstanceRow.status.in_([s.value for s in FINISHED_INSTANCE]),
                    InstanceRow.finished_at < cutoff,
                )
                .order_by(InstanceRow.finished_at)
                .limit(batch)
            ).scalars()
        )
    total = 0
    for _ in range(max_batches):
        if not instance_ids:
            break
        removed = _prune_batch(engine, instance_ids, batch)
        total += removed
        if removed == 0:
            break
    return total
