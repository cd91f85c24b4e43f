"""Read models for clients: the instance, its status object and its node executions, in camelCase."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from orchestrator import catalog, unreachable, waiting
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
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(NodeRow.__table__).where(NodeRow.instance_id == instance_id).order_by(NodeRow.id)
            ).all()
        )


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
        "workers": sorted({n.worker_id for n in nodes if n.worker_id}),
    }


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
        n.status, n.not_before, instance_status, now, wake_at=n.wake_at, signal=signals.get(n.node_id)
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
    finished = sum(1 for n in nodes if _finished(n))
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
        "progress": round(100 * finished / len(nodes)) if nodes else 100,
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
        for node_id, data in conn.execute(
            select(CheckpointRow.node_id, CheckpointRow.data)
            .where(CheckpointRow.instance_id == instance_id)
            .order_by(CheckpointRow.id)
        ):
            checkpoints[node_id] = data
    return [
        {
            "nodeId": n.node_id,
            "type": n.type,
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
