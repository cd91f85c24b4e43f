"""Retention prunes logs and checkpoints of instances that ended long ago, and nothing else."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, insert, select, update

from orchestrator import catalog, instances, logs, retention
from orchestrator.models import CheckpointRow, InstanceRow, LogRow, utcnow

DEFINITION = {"name": "kept", "version": "1.0.0", "nodes": [{"id": "a", "type": "task", "executor": "noop"}]}


def _instance_with_history(engine, status: str, finished_days_ago: float | None) -> str:
    created = instances.create_instance(engine, instances.InstanceRequest(workflow="kept"))
    finished = None if finished_days_ago is None else utcnow() - timedelta(days=finished_days_ago)
    with engine.begin() as conn:
        conn.execute(
            update(InstanceRow)
            .where(InstanceRow.id == created.instance_id)
            .values(status=status, finished_at=finished)
        )
        logs.write(conn, *(logs.LogEntry(created.instance_id, f"line {i}") for i in range(5)))
        conn.execute(
            insert(CheckpointRow),
            [
                {
                    "instance_id": created.instance_id,
                    "node_id": "a",
                    "attempt": 1,
                    "data": {"i": i},
                    "created_at": utcnow(),
                }
                for i in range(3)
            ],
        )
    return created.instance_id


def _count(engine, table, instance_id):
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(table).where(table.instance_id == instance_id)
        ).scalar()


def test_prune_removes_old_history_in_batches_and_keeps_the_rest(db):
    catalog.save_definition(db, DEFINITION)
    old = _instance_with_history(db, "completed", finished_days_ago=40)
    recent = _instance_with_history(db, "failed", finished_days_ago=2)
    running = _instance_with_history(db, "running", finished_days_ago=None)

    removed = retention.prune(db, days=30, batch=2)

    assert removed == 6 + 3  # 5 lines + the creation line, and 3 checkpoints
    assert (_count(db, LogRow, old), _count(db, CheckpointRow, old)) == (0, 0)
    for kept in (recent, running):
        assert (_count(db, LogRow, kept), _count(db, CheckpointRow, kept)) == (6, 3)
    with db.connect() as conn:  # the instance itself and its outcome stay
        assert conn.execute(select(InstanceRow.status).where(InstanceRow.id == old)).scalar() == "completed"
