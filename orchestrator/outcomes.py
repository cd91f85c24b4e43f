"""What the core hands to the edges: the messages to send, instances to start, an instance that
ended, a held claim.

Core functions run one transaction and return an `Outcome`; `workers/` and `api/` act on it after
the commit. These are plain values, so no ORM row leaves the persistence layer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from orchestrator.definitions import WorkflowDefinition
from orchestrator.limits import Gate, node_gates
from orchestrator.logs import LogEntry


@dataclass(frozen=True, kw_only=True)
class Dispatch:
    """One `run_node` message to send: Celery task id is derived from (instance, node, attempt)."""

    instance_id: str
    node_id: str
    attempt: int
    queue: str
    priority: str
    executor: str | None
    workflow: str
    node_type: str = "task"
    countdown: float = 0.0
    timeout_s: float | None = None
    # carried in the message so the claim need not read them back (they never change)
    row_id: int | None = None
    definition_id: int | None = None
    # the limits the node is held to (`limits.py`): a message with any is sent only once admitted
    # (`admission.py`); none, the common case, costs nothing
    limits: tuple[Gate, ...] = ()

    def facts(self) -> NodeFacts | None:
        if self.row_id is None or self.definition_id is None:
            return None
        return NodeFacts(self.row_id, self.definition_id, self.workflow, self.priority)


@dataclass(frozen=True)
class NodeFacts:
    """What a claim needs to know about a node and its instance besides the node's status; none of it
    ever changes, so the sender of a `run_node` message can hand it over with the message."""

    row_id: int
    definition_id: int
    workflow: str
    priority: str


@dataclass(frozen=True)
class Finished:
    instance_id: str
    status: str
    parent_instance_id: str | None
    parent_node_id: str | None
    callback_url: str | None
    # its concurrency key: its end frees a slot for the next pending instance with the same key
    concurrency_key: str | None = None
    # the node limits whose slots the end freed (its open nodes cancelled or skipped: `slot_holders`)
    freed: tuple[Gate, ...] = ()


@dataclass(frozen=True)
class StartInstance:
    """An instance the transaction created, to start (a `schedule` message) once it commits."""

    instance_id: str
    priority: str


@dataclass(frozen=True)
class Wakeup:
    """A sleeping node to wake at `delay` seconds from now (a `wake` message with a countdown); only
    a prompt copy of what the recovery sweep does in any case (`nodes/sleep.py`)."""

    instance_id: str
    node_id: str
    attempt: int
    delay: float


@dataclass
class Outcome:
    dispatches: list[Dispatch] = field(default_factory=list)
    finished: Finished | None = None
    # a failed attempt whose node was queued again for a retry (sent now, or on resume if paused)
    retrying: bool = False
    starts: list[StartInstance] = field(default_factory=list)
    wakeups: list[Wakeup] = field(default_factory=list)
    # concurrency limits whose slots the transaction freed (`slot_holders`): their release pass runs
    # after the commit (`workers/tasks.py: follow_up`); empty for nodes under no limit
    freed: tuple[Gate, ...] = ()

    def all_freed(self) -> tuple[Gate, ...]:
        extra = () if self.finished is None else self.finished.freed
        return self.freed + extra if extra else self.freed


class UnwrittenLog:
    """Log lines an attempt has not written yet, handed to the first transaction it commits.

    The claim's own "node running" line waits here so that claiming costs a single statement: the
    completion (or a failure, a heartbeat, a `ctx.log` line) writes it with its own lines, stamped
    with the time of the claim. Taken under a lock, as the heartbeat thread may write concurrently;
    given back when the transaction that took them does not commit.
    """

    def __init__(self, *entries: LogEntry) -> None:
        self._entries = list(entries)
        self._lock = threading.Lock()

    @contextmanager
    def taken(self) -> Iterator[list[LogEntry]]:
        with self._lock:
            entries, self._entries = self._entries, []
        try:
            yield entries
        except BaseException:
            with self._lock:
                self._entries[:0] = entries
            raise


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A node attempt this worker holds; every later write names `attempt` (the fencing token)."""

    row_id: int
    instance_id: str
    node_id: str
    attempt: int
    worker_id: str
    definition_id: int
    workflow: str
    last_checkpoint: Any
    outputs: dict[str, Any]
    # the instance's priority (never changes): lets a completion dispatch successors without reading
    # the instance back; None (e.g. a sub-workflow's end) reads it
    priority: str | None = None
    unwritten: UnwrittenLog = field(default_factory=UnwrittenLog, compare=False)
    # a map's item: its index and value (`${index}`, `${item}` in its config); None for other nodes
    map_item: MapItem | None = None


@dataclass(frozen=True)
class MapItem:
    index: int
    value: Any


class QueuedNode(NamedTuple):
    """A queued node's row as its message needs it (`scheduling.QUEUED_NODE` selects it, in order)."""

    id: int
    instance_id: str
    node_id: str
    attempt: int
    queue: str
    executor: str | None
    type: str


class Routing(Protocol):
    """What a node's message needs of its instance; none of it ever changes."""

    @property
    def priority(self) -> str: ...
    @property
    def workflow_name(self) -> str: ...
    @property
    def definition_id(self) -> int: ...


class InstanceRouting(NamedTuple):
    priority: str
    workflow_name: str
    definition_id: int


def dispatch_for(
    inst: Routing, definition: WorkflowDefinition, node: QueuedNode, countdown: float = 0.0
) -> Dispatch:
    """The message for the queued `node` of the instance `inst`."""
    spec = definition.node(node.node_id)
    return Dispatch(
        instance_id=node.instance_id,
        node_id=node.node_id,
        attempt=node.attempt,
        queue=node.queue,
        priority=inst.priority,
        executor=node.executor,
        workflow=inst.workflow_name,
        node_type=node.type,
        countdown=countdown,
        # a time limit for the executor's run; the other types' `timeout` (a wait's) is no such thing
        timeout_s=None if spec.timeout_ms is None or spec.executor is None else spec.timeout_ms / 1000,
        row_id=node.id,
        definition_id=inst.definition_id,
        limits=node_gates(inst.workflow_name, node.node_id, node.executor, spec.limits),
    )
