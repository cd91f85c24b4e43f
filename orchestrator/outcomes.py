"""What the core hands to the edges: the messages to send, an instance that ended, a held claim.

Core functions run one transaction and return an `Outcome`; `workers/` and `api/` act on it after
the commit. These are plain values, so no ORM row leaves the persistence layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.definitions import WorkflowDefinition


@dataclass(frozen=True)
class Dispatch:
    """One `run_node` message to send: Celery task id is derived from (instance, node, attempt)."""

    instance_id: str
    node_id: str
    attempt: int
    queue: str
    priority: str
    executor: str | None
    workflow: str
    countdown: float = 0.0
    timeout_s: float | None = None


@dataclass(frozen=True)
class Finished:
    instance_id: str
    status: str
    parent_instance_id: str | None
    parent_node_id: str | None
    callback_url: str | None


@dataclass
class Outcome:
    dispatches: list[Dispatch] = field(default_factory=list)
    finished: Finished | None = None


@dataclass(frozen=True)
class Claim:
    """A node attempt this worker holds; every later write names `attempt` (the fencing token)."""

    row_id: int
    instance_id: str
    node_id: str
    attempt: int
    worker_id: str
    definition_id: int
    workflow: str
    input: dict[str, Any]
    external_id: str | None
    max_retries: int | None
    last_checkpoint: Any
    outputs: dict[str, Any]
    # the instance's priority (never changes): lets a completion dispatch successors without reading
    # the instance back; None (e.g. a sub-workflow's end) reads it
    priority: str | None = None


def dispatch_for(inst: Any, definition: WorkflowDefinition, row: Any, countdown: float = 0.0) -> Dispatch:
    spec = definition.node(row.node_id)
    return Dispatch(
        row.instance_id,
        row.node_id,
        row.attempt,
        row.queue,
        inst.priority,
        row.executor,
        inst.workflow_name,
        countdown,
        None if spec.timeout_ms is None else spec.timeout_ms / 1000,
    )
