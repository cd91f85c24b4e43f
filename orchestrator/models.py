"""SQLAlchemy 2.x models: the tables. The core reads and writes them with Core statements in the
modules that own each concern (`transitions.py` alone writes a status column) and hands callers plain
values (`outcomes.py`), never ORM rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Microsecond timestamps on MySQL (its DATETIME drops fractions by default); naive UTC everywhere.
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# SQLite only auto-increments INTEGER PRIMARY KEY, not BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(mysql.JSON(), "mysql", "mariadb")
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class DefinitionRow(Base):
    __tablename__ = "workflow_definitions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_definition_name_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    body: Mapped[dict[str, Any]] = mapped_column(Json)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class InstanceRow(Base):
    __tablename__ = "workflow_instances"
    __table_args__ = (
        # the idempotency key: one instance per (workflow name, externalId), enforced by the database
        UniqueConstraint("workflow_name", "external_id", name="uq_instance_external_id"),
        Index("ix_instances_status_updated", "status", "updated_at"),
        Index("ix_instances_workflow_created", "workflow_name", "created_at"),
        Index("ix_instances_parent", "parent_instance_id"),
        # the newest-first keyset pagination of GET /api/v1/instances
        Index("ix_instances_created", "created_at", "id"),
        # the sweep's search for callback deliveries that are overdue
        Index("ix_instances_callback_due", "callback_state", "callback_due_at"),
        # the sweep's search for delayed instances (`startAt`) that are due
        Index("ix_instances_status_start", "status", "start_at"),
        # the count of running instances per concurrency key, and those waiting for one
        Index("ix_instances_key_status", "concurrency_key", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("workflow_definitions.id"))
    workflow_name: Mapped[str] = mapped_column(String(128))
    workflow_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    input: Mapped[dict[str, Any]] = mapped_column(Json)
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    tags: Mapped[dict[str, str]] = mapped_column(Json, default=dict)
    external_id: Mapped[str | None] = mapped_column(String(255))
    parent_instance_id: Mapped[str | None] = mapped_column(String(36))
    parent_node_id: Mapped[str | None] = mapped_column(String(128))
    created_by: Mapped[str | None] = mapped_column(String(255))
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    queue: Mapped[str | None] = mapped_column(String(64))
    timeout_ms: Mapped[int | None] = mapped_column(BigInteger)
    max_retries: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[dict[str, Any] | None] = mapped_column(Json)
    # sink nodes (nothing depends on them) not yet completed or skipped: the completion that takes it
    # to 0 finishes the instance. Counting sinks only keeps every other node's completion off this row.
    unfinished_sinks: Mapped[int] = mapped_column(Integer, default=0)
    total_nodes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    deadline_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # when a start was asked for (creation without `start: false`, a retry): a pending instance whose
    # start was asked for long ago lost its `schedule` message, and the recovery sweep starts it
    start_requested_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # the delivery of the end to `callback_url` (orchestrator/callbacks.py): `pending` from the end
    # until `delivered` or `failed`; attempts made so far, and when the next one is due at the latest
    callback_state: Mapped[str | None] = mapped_column(String(16))
    callback_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    callback_due_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # `startAt` of the create: the instance stays pending until then (the sweep starts it)
    start_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # the definition's `concurrency` key as rendered for this instance (`key:<workflow>:<value>`) and
    # its limit: a pending instance starts only while fewer running ones share it (admission.py)
    concurrency_key: Mapped[str | None] = mapped_column(String(255))
    concurrency_limit: Mapped[int | None] = mapped_column(Integer)


class NodeRow(Base):
    __tablename__ = "node_executions"
    __table_args__ = (
        UniqueConstraint("instance_id", "node_id", name="uq_node_instance_node"),
        Index("ix_nodes_status_heartbeat", "status", "heartbeat_at"),
        Index("ix_nodes_status_queued", "status", "queued_at"),
        # the sweep's search for waiting nodes whose timer is due (sleep, a wait's timeout)
        Index("ix_nodes_status_wake", "status", "wake_at"),
        # a map's items in index order, by status: the next ones to queue, the failed ones
        Index("ix_nodes_map_items", "instance_id", "map_node_id", "status", "item_index"),
        # the slots in use and the nodes waiting under an executor's limit, and under any limit
        Index("ix_nodes_executor_status", "executor", "status"),
        Index("ix_nodes_status_limit", "status", "limit_wait"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("workflow_instances.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(128))
    # the node type (orchestrator/nodes/): task, subworkflow, map, wait, sleep
    type: Mapped[str] = mapped_column(String(16), default="task", server_default="task")
    executor: Mapped[str | None] = mapped_column(String(255))
    queue: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    # a map's item: the map node's id (the item's own node_id is `<map>[<index>]`), its index and value
    map_node_id: Mapped[str | None] = mapped_column(String(128))
    item_index: Mapped[int | None] = mapped_column(Integer)
    item: Mapped[Any | None] = mapped_column(Json)
    # a map node: its items, and those not yet ended (the item whose end takes it to 0 ends the map)
    items_total: Mapped[int | None] = mapped_column(Integer)
    items_left: Mapped[int | None] = mapped_column(Integer)
    # a waiting node (wait, sleep): when its timer fires (the sweep fires it); None waits for ever
    wake_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # the fencing token: every write of a result names the attempt that claimed the node
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    # fan-in counter: dependencies not yet done; the transaction that takes it to 0 releases the node
    pending_deps: Mapped[int] = mapped_column(Integer, default=0)
    # failed attempts in the current run (reset by an instance retry); checked against `retries`
    failures: Mapped[int] = mapped_column(Integer, default=0)
    # recovery and shutdown hand-backs; capped so a node that kills its worker cannot loop forever
    handbacks: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(255))
    output: Mapped[Any | None] = mapped_column(Json)
    error: Mapped[dict[str, Any] | None] = mapped_column(Json)
    queued_at: Mapped[datetime | None] = mapped_column(Timestamp)
    not_before: Mapped[datetime | None] = mapped_column(Timestamp)
    # copies of a queued node's message the recovery sweep sent, and when it sent the last one
    # (orchestrator/resends.py): they belong to the current queueing while `resent_at >= queued_at`
    resent_at: Mapped[datetime | None] = mapped_column(Timestamp)
    resends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    heartbeat_at: Mapped[datetime | None] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # a node under a limit (admission.py): the attempt that was let through (holding a slot while
    # queued or running), and the limit it waits for (a concurrency slot, not sent; or a rate token,
    # sent with a countdown). A claim needs `limit_wait` empty or this attempt admitted.
    admitted_attempt: Mapped[int | None] = mapped_column(Integer)
    limit_wait: Mapped[str | None] = mapped_column(String(255))


class LimitRow(Base):
    """One limit in use (admission.py): the row its admissions lock, so they decide one at a time,
    the value it had then, and for a rate its bucket (GCRA's theoretical arrival time, epoch s)."""

    __tablename__ = "limits"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(32))
    tat: Mapped[float | None] = mapped_column(Double)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class LimitOverrideRow(Base):
    """An executor's limits as set through the API (`PUT /api/v1/limits/<executor>`,
    `limit_overrides.py`): each field it sets (`*_set`) wins over `ORCH_LIMITS` and the code; a
    value of None with its field set removes that kind of limit."""

    __tablename__ = "limit_overrides"

    executor: Mapped[str] = mapped_column(String(255), primary_key=True)
    concurrency_set: Mapped[bool] = mapped_column(Boolean, default=False)
    concurrency: Mapped[int | None] = mapped_column(Integer)
    rate_set: Mapped[bool] = mapped_column(Boolean, default=False)
    rate: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class SignalRow(Base):
    """A signal sent to an instance (`POST .../signals/<name>`). One that arrives before its `wait`
    node is reached is kept unconsumed (`consumed_at` None) until the node consumes it."""

    __tablename__ = "instance_signals"
    __table_args__ = (Index("ix_signals_instance_name", "instance_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("workflow_instances.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    payload: Mapped[Any | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # the wait node (and its attempt) that took it
    consumed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    node_id: Mapped[str | None] = mapped_column(String(128))
    attempt: Mapped[int | None] = mapped_column(Integer)


class CheckpointRow(Base):
    __tablename__ = "node_checkpoints"
    __table_args__ = (Index("ix_checkpoints_node", "instance_id", "node_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("workflow_instances.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(128))
    attempt: Mapped[int] = mapped_column(Integer)
    data: Mapped[Any] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class LogRow(Base):
    __tablename__ = "execution_logs"
    __table_args__ = (Index("ix_logs_instance_time", "instance_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("workflow_instances.id", ondelete="CASCADE"))
    node_id: Mapped[str | None] = mapped_column(String(128))
    level: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(LongText)
    details: Mapped[Any | None] = mapped_column(Json)
    executor: Mapped[str | None] = mapped_column(String(255))
    worker_id: Mapped[str | None] = mapped_column(String(255))
    attempt: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[float | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class WorkerRow(Base):
    __tablename__ = "workers"
    __table_args__ = (Index("ix_workers_status_heartbeat", "status", "last_heartbeat_at"),)

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    queues: Mapped[list[str]] = mapped_column(Json, default=list)
    executors: Mapped[list[str]] = mapped_column(Json, default=list)
    concurrency: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    last_heartbeat_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class ScheduleRow(Base):
    """A cron schedule that starts instances of a workflow (orchestrator/schedules.py). The firing
    (orchestrator/schedule_firing.py) advances `next_fire_at` by compare-and-set; the instance of one
    fire time is keyed by its externalId, so it is created once whatever the number of beats."""

    __tablename__ = "schedules"
    # the firing's search for schedules that are due
    __table_args__ = (Index("ix_schedules_paused_next", "paused", "next_fire_at"),)

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(128))
    # None: the workflow's latest version at each fire time
    version: Mapped[str | None] = mapped_column(String(64))
    cron: Mapped[str] = mapped_column(String(255))
    timezone: Mapped[str] = mapped_column(String(64))
    input: Mapped[dict[str, Any]] = mapped_column(Json)
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    tags: Mapped[dict[str, str]] = mapped_column(Json, default=dict)
    overlap: Mapped[str] = mapped_column(String(16))
    catchup: Mapped[str] = mapped_column(String(8))
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # the next fire time not yet handled (naive UTC); None when the expression never fires again
    next_fire_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_fire_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_instance_id: Mapped[str | None] = mapped_column(String(36))
    # fire times not started because a previous run was still open (`overlap: skip`)
    skipped_fires: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
