"""Creating instances: the instance row and one row per node, written in one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from orchestrator import catalog, executors, leases, limits, logs, required_inputs
from orchestrator.db import retrying
from orchestrator.definitions import WorkflowDefinition
from orchestrator.errors import LostClaim, Problem, TemplateError, ValidationError
from orchestrator.inputs import validate_input
from orchestrator.models import InstanceRow, NodeRow, utcnow
from orchestrator.states import InstanceStatus, NodeStatus

PRIORITIES = ("low", "normal", "high", "critical")


@dataclass(frozen=True)
class InstanceRequest:
    """What a client asks for; `api/` and the CLI build it from camelCase JSON."""

    workflow: str
    version: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    priority: str = "normal"
    external_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    timeout_ms: int | None = None
    max_retries: int | None = None
    created_by: str | None = None
    parent_instance_id: str | None = None
    parent_node_id: str | None = None
    # the parent node's attempt, for a sub-workflow node's child: created only while it holds the node
    parent_attempt: int | None = None
    callback_url: str | None = None
    queue: str | None = None
    start: bool = True
    # not started before this time (naive UTC; None or a past time: at once). With `start` false it
    # is only recorded: a manual start starts such an instance
    start_at: datetime | None = None
    # run first in the create's transaction; raising there creates nothing (a schedule's fire time
    # checks that its schedule was not paused or changed since the pass read it)
    guard: Callable[[Connection], None] | None = None


@dataclass(frozen=True)
class Created:
    instance_id: str
    created: bool  # False: an instance with this externalId already existed and is returned
    status: str
    # the instance row as written, when this call created it: what a reply shows without a read back
    written: dict[str, Any] | None = None


# built once: every create runs them
_INSERT_INSTANCE = insert(InstanceRow)
_INSERT_NODES = insert(NodeRow)
_PARENT_STATUS = select(InstanceRow.status).where(InstanceRow.id == bindparam("id"))
_BY_EXTERNAL_ID = select(InstanceRow.id, InstanceRow.status).where(
    InstanceRow.workflow_name == bindparam("workflow"), InstanceRow.external_id == bindparam("external_id")
)


@retrying()
def create_instance(engine: Engine, request: InstanceRequest) -> Created:
    """Validate the input against the definition and write the instance with all its node rows.

    The lookups (definition, externalId, parent) and the writes share one transaction. A repeated
    `external_id` for the same workflow name returns the existing instance, also under concurrent
    requests (the unique key decides). Raises WorkflowNotFound or ValidationError (also for an input
    path a node's template needs and the input lacks: `required_inputs.py`).
    """
    workflow = request.workflow
    try:
        with engine.begin() as conn:
            if request.guard is not None:
                request.guard(conn)
            stored = catalog.get_definition(engine, request.workflow, request.version, conn)
            workflow = stored.definition.name
            if request.external_id is not None:
                existing = _by_external_id(conn, workflow, request.external_id)
                if existing is not None:
                    return existing
            if request.parent_attempt is not None:
                _hold_parent_node(conn, request, request.parent_attempt)
            instance, nodes = _rows(conn, stored, request)
            conn.execute(_INSERT_INSTANCE, instance)
            conn.execute(_INSERT_NODES, nodes)
            logs.write(
                conn,
                logs.LogEntry(
                    instance["id"],
                    f"instance created ({workflow} {stored.definition.version})",
                    details={"status": "pending"},
                ),
            )
    except IntegrityError:
        if request.external_id is None:
            raise
        with engine.connect() as conn:
            existing = _by_external_id(conn, workflow, request.external_id)
        if existing is None:
            raise
        return existing
    return Created(instance["id"], True, InstanceStatus.PENDING.value, instance)


def _rows(
    conn: Connection, stored: catalog.StoredDefinition, request: InstanceRequest
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The instance row and its node rows, after the input and the parent are checked."""
    definition = stored.definition
    data = validate_input(definition.inputs, request.input)
    required_inputs.check(definition, data)
    if request.parent_instance_id is not None:
        _check_parent(conn, request.parent_instance_id)
    now = utcnow()
    instance_id = str(uuid.uuid4())
    timeout_ms = request.timeout_ms if request.timeout_ms is not None else definition.timeout_ms
    # a delayed instance's start is requested for its startAt (`delayed_start`), and its timeout
    # runs from then
    begins = now if request.start_at is None else max(now, request.start_at)
    instance = {
        "id": instance_id,
        "definition_id": stored.id,
        "workflow_name": definition.name,
        "workflow_version": definition.version,
        "status": InstanceStatus.PENDING.value,
        "input": data,
        "priority": request.priority,
        "tags": dict(request.tags),
        "external_id": request.external_id,
        "parent_instance_id": request.parent_instance_id,
        "parent_node_id": request.parent_node_id,
        "created_by": request.created_by,
        "callback_url": request.callback_url,
        "queue": request.queue,
        "timeout_ms": timeout_ms,
        "max_retries": request.max_retries,
        "unfinished_sinks": len(definition.sinks),
        "total_nodes": len(definition.nodes),
        "created_at": now,
        "updated_at": now,
        "deadline_at": None if timeout_ms is None else _deadline(begins, timeout_ms),
        "start_requested_at": begins if request.start else None,
        "start_at": request.start_at,
        **_concurrency_key(definition, instance_id, data, request.external_id),
    }
    nodes = [
        {
            "instance_id": instance_id,
            "node_id": node.id,
            "type": node.type,
            "executor": node.executor,
            "queue": node.queue or request.queue or _default_queue(node.executor),
            "status": NodeStatus.PENDING.value,
            "attempt": 0,
            "pending_deps": len(node.depends_on),
            "failures": 0,
            "handbacks": 0,
            "updated_at": now,
        }
        for node in definition.nodes
    ]
    return instance, nodes


def _concurrency_key(
    definition: WorkflowDefinition, instance_id: str, data: dict[str, Any], external_id: str | None
) -> dict[str, Any]:
    """The instance's concurrency key and limit (`key_limits.py`); ValidationError naming the input
    when the key's template does not render from it."""
    if definition.key_limit is None:
        return {}
    scope = {"input": data, "instance": {"id": instance_id, "externalId": external_id}}
    try:
        key = limits.key_name(definition.name, definition.key_limit, scope)
    except TemplateError as exc:
        problem = Problem("input", f"the definition's concurrency key: {exc.message}", "REQUIRED_FIELD")
        raise ValidationError("input does not match the workflow's inputs", [problem]) from None
    return {"concurrency_key": key, "concurrency_limit": definition.key_limit.limit}


_LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999)


def _deadline(begins: datetime, timeout_ms: int) -> datetime:
    timeout = timedelta(milliseconds=timeout_ms)
    return begins + timeout if begins <= _LATEST - timeout else _LATEST


def _hold_parent_node(conn: Connection, request: InstanceRequest, attempt: int) -> None:
    parent, node = str(request.parent_instance_id), str(request.parent_node_id)
    if not leases.renew_node(conn, parent, node, attempt):
        raise LostClaim(f"node {node} attempt {attempt} no longer holds its claim; no child created")


def _check_parent(conn: Connection, parent_id: str) -> None:
    """A child may only be attached to an instance that exists and is running (as in the seed)."""
    status = conn.execute(_PARENT_STATUS, {"id": parent_id}).scalar()
    if status != InstanceStatus.RUNNING.value:
        reason = (
            "no instance with this id" if status is None else f"the parent instance is {status}, not running"
        )
        raise ValidationError(
            "invalid parent instance", [Problem("parentInstanceId", reason, "INVALID_PARENT_INSTANCE")]
        )


def _default_queue(executor_name: str | None) -> str:
    # sub-workflow nodes only start a child instance; any worker can do that
    return executors.domain_of(executor_name) if executor_name else executors.DEFAULT_QUEUE


def _by_external_id(conn: Connection, workflow: str, external_id: str) -> Created | None:
    row = conn.execute(_BY_EXTERNAL_ID, {"workflow": workflow, "external_id": external_id}).first()
    return None if row is None else Created(row.id, False, row.status)
