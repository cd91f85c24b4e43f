"""The execution log: state changes and `ctx.log` lines, written inside the transactions they describe."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from orchestrator.models import LogRow, utcnow

LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class LogEntry:
    instance_id: str
    message: str
    level: str = "info"
    node_id: str | None = None
    details: Any = None
    executor: str | None = None
    worker_id: str | None = None
    attempt: int | None = None
    duration_ms: float | None = None
    at: datetime | None = None  # when it happened, if that was before the line is written

    def row(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "node_id": self.node_id,
            "level": self.level,
            "message": self.message,
            "details": self.details,
            "executor": self.executor,
            "worker_id": self.worker_id,
            "attempt": self.attempt,
            "duration_ms": self.duration_ms,
            "created_at": self.at or utcnow(),
        }


_INSERT = insert(LogRow)  # built once: it is on every node's path


def write(conn: Connection, *entries: LogEntry) -> None:
    """Insert entries in the caller's transaction: one multi-row INSERT, no extra round trip.

    On MySQL the row's foreign key takes a shared lock on its instance row: a transaction that will
    also update that row should do so first (see `scheduling`)."""
    if entries:
        conn.execute(_INSERT, [e.row() for e in entries])


def query(
    engine: Engine,
    instance_id: str,
    *,
    node_id: str | None = None,
    level: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Log lines of one instance, oldest first; `level` keeps that level and the more severe ones."""
    statement = select(LogRow.__table__).where(LogRow.instance_id == instance_id)
    if node_id is not None:
        statement = statement.where(LogRow.node_id == node_id)
    if level is not None:
        statement = statement.where(LogRow.level.in_(LEVELS[LEVELS.index(level) :]))
    if since is not None:
        statement = statement.where(LogRow.created_at >= since)
    if until is not None:
        statement = statement.where(LogRow.created_at <= until)
    if after_id is not None:
        statement = statement.where(LogRow.id > after_id)
    # paging by id must also order by id, or a line could fall between two pages
    order = (LogRow.id,) if after_id is not None else (LogRow.created_at, LogRow.id)
    statement = statement.order_by(*order).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(statement).all()
    return [
        {
            "id": r.id,
            "timestamp": r.created_at.isoformat() + "Z",
            "level": r.level,
            "nodeId": r.node_id,
            "message": r.message,
            "details": r.details,
            "executor": r.executor,
            "durationMs": r.duration_ms,
            "workerId": r.worker_id,
            "attempt": r.attempt,
        }
        for r in rows
    ]
