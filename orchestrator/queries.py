"""Listing instances (filters and keyset pages) and the compact node states that event streams diff.

Pages are keyset pages, newest first by `(created_at desc, id desc)`: a cursor names the last row of a
page, and the next page starts strictly after it. Unlike an offset, a cursor stays correct while
instances are created: new rows sort before the pages a client has already read, so a walk through
the pages never repeats or skips a row that existed when it started.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, or_, select

from orchestrator import delayed_start
from orchestrator.errors import Problem, ValidationError
from orchestrator.models import InstanceRow, NodeRow, utcnow
from orchestrator.views import instance_summary, iso


@dataclass(frozen=True)
class InstanceFilter:
    """Conditions that all hold for a listed instance; empty fields do not filter."""

    statuses: tuple[str, ...] = ()
    workflow: str | None = None
    tags: tuple[tuple[str, str], ...] = ()  # (key, value): the instance's tag `key` equals `value`
    external_id: str | None = None
    # True: pending instances whose startAt is to come; False: the others (`delayed_start`)
    delayed: bool | None = None


@dataclass(frozen=True)
class Cursor:
    """The position after which the next page starts: the last row of the previous page."""

    created_at: datetime
    instance_id: str

    def encode(self) -> str:
        """Opaque to clients: URL-safe base64 of a small JSON array."""
        raw = json.dumps([self.created_at.isoformat(), self.instance_id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The cursor that `encode` produced; raises ValidationError for anything else."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            created_at, instance_id = json.loads(raw)
            if not isinstance(instance_id, str) or not isinstance(created_at, str):
                raise ValueError("wrong types")
            return cls(datetime.fromisoformat(created_at).replace(tzinfo=None), instance_id)
        except (ValueError, TypeError, binascii.Error):
            raise ValidationError(
                "invalid cursor",
                [Problem("cursor", "is not a cursor returned by this API (pass nextCursor as is)")],
            ) from None


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: Cursor | None  # None: this was the last page


def list_instances(engine: Engine, where: InstanceFilter, limit: int, after: Cursor | None = None) -> Page:
    """Instance summaries matching `where`, newest first, at most `limit`, starting after `after`.

    Every value is a bound parameter; tag filters are JSON path expressions that MySQL/MariaDB and
    SQLite both understand (`JSON_EXTRACT(tags, '$."key"')`), so tag keys must not contain `"` or `\\`
    (the API rejects such keys before they get here).
    """
    statement = select(InstanceRow.__table__)
    if where.statuses:
        statement = statement.where(InstanceRow.status.in_(where.statuses))
    if where.workflow is not None:
        statement = statement.where(InstanceRow.workflow_name == where.workflow)
    if where.external_id is not None:
        statement = statement.where(InstanceRow.external_id == where.external_id)
    if where.delayed is not None:
        statement = statement.where(delayed_start.delayed(utcnow(), where.delayed))
    for key, value in where.tags:
        statement = statement.where(InstanceRow.tags[key].as_string() == value)
    if after is not None:
        statement = statement.where(
            or_(
                InstanceRow.created_at < after.created_at,
                and_(InstanceRow.created_at == after.created_at, InstanceRow.id < after.instance_id),
            )
        )
    # one row more than asked says whether another page follows
    statement = statement.order_by(InstanceRow.created_at.desc(), InstanceRow.id.desc()).limit(limit + 1)
    with engine.connect() as conn:
        rows = conn.execute(statement).all()
    more = len(rows) > limit
    rows = rows[:limit]
    last = Cursor(rows[-1].created_at, rows[-1].id) if more else None
    return Page([instance_summary(row) for row in rows], last)


def node_states(engine: Engine, instance_id: str) -> list[dict[str, Any]]:
    """Each node's state without outputs or checkpoints, oldest change first: what an event stream
    compares between two polls. An unknown instance has no nodes."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                NodeRow.node_id,
                NodeRow.status,
                NodeRow.attempt,
                NodeRow.worker_id,
                NodeRow.error,
                NodeRow.queued_at,
                NodeRow.started_at,
                NodeRow.finished_at,
                NodeRow.updated_at,
            )
            .where(NodeRow.instance_id == instance_id)
            .order_by(NodeRow.updated_at, NodeRow.id)
        ).all()
    return [
        {
            "nodeId": r.node_id,
            "status": r.status,
            "attempt": r.attempt,
            "workerId": r.worker_id,
            "queuedAt": iso(r.queued_at),
            "startedAt": iso(r.started_at),
            "finishedAt": iso(r.finished_at),
            "updatedAt": iso(r.updated_at),
            "error": r.error,
        }
        for r in rows
    ]
