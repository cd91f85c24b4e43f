"""The `workers` table: who is consuming which queues, and whether they are alive."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from orchestrator.db import retrying
from orchestrator.models import NodeRow, WorkerRow, utcnow
from orchestrator.states import NodeStatus


@retrying()
def register(
    engine: Engine,
    worker_id: str,
    hostname: str,
    pid: int,
    queues: list[str],
    executor_names: list[str],
    concurrency: int | None,
) -> None:
    """(Re)register a worker as active; a restarted worker with the same id replaces its old row."""
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(delete(WorkerRow).where(WorkerRow.id == worker_id))
        conn.execute(
            insert(WorkerRow).values(
                id=worker_id,
                hostname=hostname,
                pid=pid,
                queues=queues,
                executors=executor_names,
                concurrency=concurrency,
                status="active",
                started_at=now,
                last_heartbeat_at=now,
            )
        )


@dataclass(frozen=True)
class Registration:
    """Where the process that last registered under an id runs."""

    hostname: str
    pid: int | None
    status: str


def registration(engine: Engine, worker_id: str) -> Registration | None:
    """The last registration under `worker_id`, or None if there is none."""
    with engine.connect() as conn:
        row = conn.execute(
            select(WorkerRow.hostname, WorkerRow.pid, WorkerRow.status).where(WorkerRow.id == worker_id)
        ).first()
    return None if row is None else Registration(row.hostname, row.pid, row.status)


@retrying()
def heartbeat(engine: Engine, worker_id: str, revive_as: str = "active") -> bool:
    """Renew the worker's heartbeat. A worker that heartbeats is alive: if the sweep had presumed it
    dead (`gone`: it was frozen or cut off from the database past the timeout), its row becomes
    `revive_as` again, or every node it claims from now on would be handed back by each sweep.
    The nodes it held meanwhile were handed back and its results for them are fenced off.
    Returns True when the worker was revived."""
    now = utcnow()
    with engine.begin() as conn:
        revived = conn.execute(
            update(WorkerRow)
            .where(WorkerRow.id == worker_id, WorkerRow.status == "gone")
            .values(status=revive_as, last_heartbeat_at=now)
        ).rowcount
        if not revived:
            conn.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(last_heartbeat_at=now))
    return bool(revived)


@retrying()
def set_status(engine: Engine, worker_id: str, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(status=status))


def running_nodes(engine: Engine, worker_id: str) -> int:
    """How many nodes are running on this worker now."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(NodeRow)
                .where(NodeRow.status == NodeStatus.RUNNING.value, NodeRow.worker_id == worker_id)
            ).scalar_one()
        )


def list_workers(engine: Engine, heartbeat_timeout: float) -> list[dict[str, Any]]:
    """Every worker seen, with `alive` (heartbeat within the timeout) and the nodes it runs now."""
    cutoff = utcnow() - timedelta(seconds=heartbeat_timeout)
    with engine.connect() as conn:
        rows = conn.execute(select(WorkerRow.__table__).order_by(WorkerRow.id)).all()
        running: dict[str, list[dict[str, str]]] = {}
        for worker_id, instance_id, node_id in conn.execute(
            select(NodeRow.worker_id, NodeRow.instance_id, NodeRow.node_id).where(
                NodeRow.status == NodeStatus.RUNNING.value, NodeRow.worker_id.is_not(None)
            )
        ):
            running.setdefault(str(worker_id), []).append({"instanceId": instance_id, "nodeId": node_id})
    return [
        {
            "id": r.id,
            "hostname": r.hostname,
            "pid": r.pid,
            "queues": r.queues,
            "executors": r.executors,
            "concurrency": r.concurrency,
            "status": r.status,
            "startedAt": r.started_at.isoformat() + "Z",
            "lastHeartbeat": r.last_heartbeat_at.isoformat() + "Z",
            "alive": r.status != "gone" and r.last_heartbeat_at >= cutoff,
            "runningNodes": running.get(r.id, []),
        }
        for r in rows
    ]
