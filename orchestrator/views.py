"""Read models for clients: the instance, its status object and its node executions, in camelCase."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from orchestrator import catalog, key_limits, unreachable, waiting
from orchestrator.definitions import WorkflowDefinition
from orchestrator.errors import NotFound
from orchestrator.instances import Created
from orchestrator.models import CheckpointRow, InstanceRow, NodeRow, utcnow
from orchestrator.redaction import redact_url
from orchestrator.states import NodeStatus


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"


def _instance_row(engine: Engine, instance_id: str) -> Any:
    with engine.connect() as conn:
        row = conn.execute(select(InstanceRow.__table__).where(InstanceRow.id == instance_id)).first()
    if row is None:
        raise NotFound(f"no instance {instance_id!r}")
    return row


def _nodes(engine: Engine, instance_id: str) -> list[Any]:
    """The instance's nodes, a map's items aside (`items`, `_item_counts`)."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(NodeRow.__table__)
                .where(NodeRow.instance_id == instance_id, NodeRow.map_node_id.is_(None))
                .order_by(NodeRow.id)
            ).all()
        )


class _ItemCounts:
    """Per map node: its items by status, and how many reached an outcome of their own (the rule of
    `progress`: an item a failure skipped did not)."""

    def __init__(self, engine: Engine, instance_id: str) -> None:
        self.by_status: dict[str, dict[str, int]] = {}
        self.finished: dict[str, int] = {}
        with engine.connect() as conn:
            counted = conn.execute(
                select(NodeRow.map_node_id, NodeRow.status, func.count())
                .where(NodeRow.instance_id == instance_id, NodeRow.map_node_id.is_not(None))
                .group_by(NodeRow.map_node_id, NodeRow.status)
            ).all()
            skipped_by_failure: dict[str, int] = {}
            if any(status == NodeStatus.SKIPPED.value for _, status, _ in counted):
                for map_id, error in conn.execute(
                    select(NodeRow.map_node_id, NodeRow.error).where(
                        NodeRow.instance_id == instance_id,
                        NodeRow.map_node_id.is_not(None),
                        NodeRow.status == NodeStatus.SKIPPED.value,
                    )
                ):
                    if unreachable.skipped_by_failure(error):
                        skipped_by_failure[map_id] = skipped_by_failure.get(map_id, 0) + 1
        for owner, status, count in counted:
            map_id = str(owner)
            self.by_status.setdefault(map_id, {})[status] = count
            if status in _FINISHED_ITEM:
                self.finished[map_id] = self.finished.get(map_id, 0) + count
        for map_id, count in skipped_by_failure.items():
            self.finished[map_id] -= count

    def total(self) -> int:
        return sum(sum(counts.values()) for counts in self.by_status.values())

    def view(self, map_id: str) -> dict[str, Any]:
        counts = self.by_status.get(map_id, {})
        done = sum(n for status, n in counts.items() if status in _ENDED_ITEM)
        return {"total": sum(counts.values()), "done": done, "byStatus": counts}


_FINISHED_ITEM = (NodeStatus.COMPLETED.value, NodeStatus.FAILED.value, NodeStatus.SKIPPED.value)
_ENDED_ITEM = (*_FINISHED_ITEM, NodeStatus.CANCELLED.value)


def instance_summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "workflow": row.workflow_name,
        "version": row.workflow_version,
        "status": row.status,
        "priority": row.priority,
        "tags": row.tags or {},
        "externalId": row.external_id,
        "parentInstanceId": row.parent_instance_id,
        "createdBy": row.created_by,
        "createdAt": iso(row.created_at),
        "startAt": iso(row.start_at),
        "startedAt": iso(row.started_at),
        "updatedAt": iso(row.updated_at),
        "finishedAt": iso(row.finished_at),
        "error": row.error,
    }


def instance(engine: Engine, instance_id: str) -> dict[str, Any]:
    """The instance with its input and context (outputs of finished nodes). Raises NotFound."""
    row = _instance_row(engine, instance_id)
    nodes = _nodes(engine, instance_id)
    context = {n.node_id: {"output": n.output} for n in nodes if n.status == NodeStatus.COMPLETED.value}
    return {
        **instance_summary(row),
        "input": row.input,
        "context": context,
        "timeout": row.timeout_ms,
        "maxRetries": row.max_retries,
        "parentNodeId": row.parent_node_id,
        # stored with its credentials for the delivery; shown without them
        "callbackUrl": None if row.callback_url is None else redact_url(row.callback_url),
        "queue": row.queue,
        "output": output_of(catalog.load_definition(engine, row.definition_id), nodes),
        "workers": _workers(engine, instance_id, nodes),
        # a pending instance held back by its definition's concurrency key (`waiting.py`)
        "waitingFor": key_limits.waiting_for(engine, row),
    }


def _workers(engine: Engine, instance_id: str, nodes: list[Any]) -> list[str]:
    """The workers that ran the instance's nodes, and its maps' items."""
    found = {n.worker_id for n in nodes if n.worker_id}
    if any(n.type == "map" for n in nodes):
        with engine.connect() as conn:
            found |= set(
                conn.execute(
                    select(NodeRow.worker_id)
                    .distinct()
                    .where(NodeRow.instance_id == instance_id, NodeRow.map_node_id.is_not(None))
                ).scalars()
            )
    return sorted(w for w in found if w)


def output_of(definition: WorkflowDefinition, nodes: list[Any]) -> Any:
    """An instance's output: the output of its one sink node (a node nothing depends on), or with
    several sinks a map of sink id to output. Skipped sinks contribute nothing."""
    sinks = [n for n in nodes if not definition.successors.get(n.node_id)]
    done = [n for n in sinks if n.status == NodeStatus.COMPLETED.value]
    if len(sinks) == 1:
        return done[0].output if done else None
    return {n.node_id: n.output for n in done}


def _signals(engine: Engine, definition_id: int, nodes: list[Any]) -> dict[str, str]:
    """The signal each waiting wait node waits for (read from its definition only when one waits)."""
    waits = [n.node_id for n in nodes if n.status == NodeStatus.WAITING.value and n.type == "wait"]
    if not waits:
        return {}
    definition = catalog.load_definition(engine, definition_id)
    return {node_id: str(definition.node(node_id).signal) for node_id in waits}


def _waiting_for(n: Any, instance_status: str, now: datetime, signals: dict[str, str]) -> Any:
    return waiting.waiting_for(
        n.status,
        n.not_before,
        instance_status,
        now,
        wake_at=n.wake_at,
        signal=signals.get(n.node_id),
        limit_wait=n.limit_wait,
        admitted=n.admitted_attempt is not None and n.admitted_attempt == n.attempt,
    )


def _finished(node: Any) -> bool:
    """Whether a node counts towards `progress`: it reached an outcome of its own (completed, failed,
    or skipped by its `when`). A node cancelled, or skipped because a failure elsewhere ended its
    instance, did not finish: a failed or cancelled instance shows how far it really got."""
    if node.status == NodeStatus.SKIPPED.value:
        return not unreachable.skipped_by_failure(node.error)
    return node.status in (NodeStatus.COMPLETED.value, NodeStatus.FAILED.value)


def status(engine: Engine, instance_id: str) -> dict[str, Any]:
    """The status object of SPEC section 4. Raises NotFound."""
    row = _instance_row(engine, instance_id)
    nodes = _nodes(engine, instance_id)
    by_status: dict[str, list[str]] = {}
    for n in nodes:
        by_status.setdefault(n.status, []).append(n.node_id)
    finished_items = total_items = 0
    if any(n.type == "map" for n in nodes):  # a map's items count, one by one
        items = _ItemCounts(engine, instance_id)
        finished_items, total_items = sum(items.finished.values()), items.total()
    finished = sum(1 for n in nodes if _finished(n)) + finished_items
    total = len(nodes) + total_items
    running = by_status.get(NodeStatus.RUNNING.value, [])
    end = row.finished_at
    started = row.started_at
    elapsed = None
    if started is not None:
        elapsed = int(((end or row.updated_at) - started).total_seconds() * 1000)
    now = utcnow()
    signals = _signals(engine, row.definition_id, nodes)
    waiting_for = {
        n.node_id: reason for n in nodes if (reason := _waiting_for(n, row.status, now, signals)) is not None
    }
    return {
        "id": row.id,
        "status": row.status,
        "progress": round(100 * finished / total) if total else 100,
        "currentNode": running[0] if running else None,
        "currentNodes": running,
        "completedNodes": by_status.get(NodeStatus.COMPLETED.value, []),
        "failedNodes": by_status.get(NodeStatus.FAILED.value, []),
        "skippedNodes": by_status.get(NodeStatus.SKIPPED.value, []),
        "queuedNodes": by_status.get(NodeStatus.QUEUED.value, []),
        "waitingNodes": by_status.get(NodeStatus.WAITING.value, []),
        # node id -> why it is not running yet (`orchestrator/waiting.py`): "worker", "retryDelay",
        # or what a waiting node waits for
        "waitingFor": waiting_for,
        "totalNodes": len(nodes),
        # the items of its maps so far, which `progress` counts one by one beside the nodes
        "totalItems": total_items,
        "finishedItems": finished_items,
        "startedAt": iso(started),
        "updatedAt": iso(row.updated_at),
        "finishedAt": iso(end),
        "executionTimeMs": elapsed,
        "error": row.error,
    }


def nodes(engine: Engine, instance_id: str) -> list[dict[str, Any]]:
    """Every node execution with its newest checkpoint. Raises NotFound."""
    instance = _instance_row(engine, instance_id)
    instance_status = instance.status
    rows = _nodes(engine, instance_id)
    now = utcnow()
    signals = _signals(engine, instance.definition_id, rows)
    with engine.connect() as conn:
        checkpoints: dict[str, Any] = {}
        # the listed nodes' only: a map's items (up to 10,000, each with its own) have their endpoint
        for node_id, data in conn.execute(
            select(CheckpointRow.node_id, CheckpointRow.data)
            .where(
                CheckpointRow.instance_id == instance_id,
                CheckpointRow.node_id.in_([n.node_id for n in rows]),
            )
            .order_by(CheckpointRow.id)
        ):
            checkpoints[node_id] = data
    items = _ItemCounts(engine, instance_id) if any(n.type == "map" for n in rows) else None
    return [
        {
            "nodeId": n.node_id,
            "type": n.type,
            **({"items": items.view(n.node_id)} if items is not None and n.type == "map" else {}),
            "executor": n.executor,
            "queue": n.queue,
            "status": n.status,
            "attempt": n.attempt,
            "failures": n.failures,
            "workerId": n.worker_id,
            "queuedAt": iso(n.queued_at),
            "startedAt": iso(n.started_at),
            "heartbeatAt": iso(n.heartbeat_at),
            "finishedAt": iso(n.finished_at),
            "output": n.output,
            "error": n.error,
            "skipReason": unreachable.skip_reason(n.status, n.error),
            "waitingFor": _waiting_for(n, instance_status, now, signals),
            "lastCheckpoint": checkpoints.get(n.node_id),
        }
        for n in rows
    ]


def instance_summary_by_id(engine: Engine, instance_id: str) -> dict[str, Any]:
    return instance_summary(_instance_row(engine, instance_id))


class _Written:
    """A row as it was inserted (a dict of column values), read like a fetched one; columns the
    insert left out are None, as the database would have them."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getattr__(self, column: str) -> Any:
        return self._values.get(column)


def created_summary(engine: Engine, created: Created) -> dict[str, Any]:
    """The summary of an instance just created (from what was written: no read back) or found."""
    if created.written is not None:
        return instance_summary(_Written(created.written))
    return instance_summary_by_id(engine, created.instance_id)


MAX_ITEMS_PAGE = 100  # items carry their outputs: a page of them stays a few MiB at most


def items(
    engine: Engine, instance_id: str, map_id: str, status: str | None, limit: int, after: int | None
) -> dict[str, Any]:
    """A page of a map node's items in index order (those of `status`, after index `after`), and the
    index to ask for the next page after (None: no more). Raises NotFound for an unknown instance, or
    a node that is not one of its map nodes."""
    _instance_row(engine, instance_id)
    with engine.connect() as conn:
        kind = conn.execute(
            select(NodeRow.type).where(NodeRow.instance_id == instance_id, NodeRow.node_id == map_id)
        ).scalar()
        if kind is None:
            raise NotFound(f"no node {map_id!r} in instance {instance_id!r}")
        if kind != "map":
            raise NotFound(f"node {map_id!r} is a {kind} node, not a map: it has no items")
        statement = (
            select(NodeRow.__table__)
            .where(NodeRow.instance_id == instance_id, NodeRow.map_node_id == map_id)
            .order_by(NodeRow.item_index)
            .limit(limit + 1)
        )
        if status is not None:
            statement = statement.where(NodeRow.status == status)
        if after is not None:
            statement = statement.where(NodeRow.item_index > after)
        rows = conn.execute(statement).all()
    page = rows[:limit]
    return {
        "items": [
            {
                "index": n.item_index,
                "nodeId": n.node_id,
                "status": n.status,
                "attempt": n.attempt,
                "output": n.output,
                "error": n.error,
                "startedAt": iso(n.started_at),
                "finishedAt": iso(n.finished_at),
            }
            for n in page
        ],
        "next": page[-1].item_index if len(rows) > limit else None,
    }
