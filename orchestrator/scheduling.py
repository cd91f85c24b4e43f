"""The per-node path: start an instance, claim a node, finish it and release its successors.

Every function here is one short transaction that returns what must be enqueued *after* it commits
(`Dispatch`); the core never talks to Celery itself. Fan-in is decided once, inside the finishing
transaction, by a counter on the successor rows that are locked for the decision.

The node path is kept to few round trips (docs/BENCHMARKS.md): a claim is UPDATE, SELECT, log INSERT;
a completion is UPDATE, successors SELECT ... FOR UPDATE, one UPDATE releasing them (a join still held
back by other dependencies: one guarded UPDATE instead of both), one guarded UPDATE counting the
instance down, log INSERT. Statements used on every node are built once.

Lock order in every transaction that ends a node: the node row, its successor rows (id order), the
instance row, and only then log rows. A log row's foreign key takes a shared lock on the instance
row; a shared lock taken first and upgraded later is how two finishers of one instance deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, bindparam, select, update

from orchestrator import catalog, logs, templates
from orchestrator.db import retrying
from orchestrator.definitions import WorkflowDefinition
from orchestrator.errors import LostClaim
from orchestrator.models import CheckpointRow, InstanceRow, NodeRow, utcnow
from orchestrator.states import InstanceStatus as I
from orchestrator.states import NodeStatus as N
from orchestrator.transitions import (
    claim_node,
    finish_node,
    move_instance,
    move_node,
    move_nodes,
    queue_released,
)

MAX_RETRY_DELAY_S = 3600.0


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


_INSTANCE_COLUMNS = (
    InstanceRow.status,
    InstanceRow.priority,
    InstanceRow.workflow_name,
    InstanceRow.definition_id,
    InstanceRow.unfinished_nodes,
    InstanceRow.parent_instance_id,
    InstanceRow.parent_node_id,
    InstanceRow.callback_url,
    InstanceRow.started_at,
    InstanceRow.max_retries,
)


_INSTANCE = select(*_INSTANCE_COLUMNS).where(InstanceRow.id == bindparam("instance_id"))
_INSTANCE_LOCKED = _INSTANCE.with_for_update()
_CLAIMED = (
    select(
        NodeRow.id,
        NodeRow.executor,
        InstanceRow.definition_id,
        InstanceRow.workflow_name,
        InstanceRow.input,
        InstanceRow.external_id,
        InstanceRow.max_retries,
        InstanceRow.priority,
    )
    .join(InstanceRow, InstanceRow.id == NodeRow.instance_id)
    .where(NodeRow.instance_id == bindparam("instance_id"), NodeRow.node_id == bindparam("node_id"))
)
# the rows a finished node may release, locked in id order so concurrent finishers of a join decide
# one by one; everything a Dispatch needs comes with them
_SUCCESSORS = (
    select(
        NodeRow.id,
        NodeRow.instance_id,
        NodeRow.node_id,
        NodeRow.attempt,
        NodeRow.queue,
        NodeRow.executor,
        NodeRow.pending_deps,
        NodeRow.status,
    )
    .where(
        NodeRow.instance_id == bindparam("instance_id"),
        NodeRow.node_id.in_(bindparam("node_ids", expanding=True)),
    )
    .order_by(NodeRow.id)
    .with_for_update()
)
_DEPENDENCY_DONE = (
    update(NodeRow)
    .where(NodeRow.id.in_(bindparam("ids", expanding=True)))
    .values(pending_deps=NodeRow.pending_deps - 1)
)
# a join that other dependencies still hold back: one statement counts it down (row count 1), and no
# read is needed; the finisher that finds it at 1 (row count 0) takes the locking path below
_JOIN_COUNTED = (
    update(NodeRow)
    .where(
        NodeRow.instance_id == bindparam("b_instance"),
        NodeRow.node_id == bindparam("b_node"),
        NodeRow.pending_deps > 1,
    )
    .values(pending_deps=NodeRow.pending_deps - 1)
)
# the common end of a node: its instance runs and other nodes are left; the row count says so
_COUNT_DOWN_RUNNING = (
    update(InstanceRow)
    .where(
        InstanceRow.id == bindparam("instance_id"),
        InstanceRow.status == I.RUNNING.value,
        InstanceRow.unfinished_nodes > 1,
    )
    .values(unfinished_nodes=InstanceRow.unfinished_nodes - 1, updated_at=bindparam("now"))
)
_COUNT_DOWN = (
    update(InstanceRow)
    .where(InstanceRow.id == bindparam("instance_id"))
    .values(unfinished_nodes=InstanceRow.unfinished_nodes - 1, updated_at=bindparam("now"))
)


class _Released(NamedTuple):
    instance_id: str
    node_id: str
    attempt: int
    queue: str
    executor: str | None


class _Routing(NamedTuple):
    priority: str
    workflow_name: str


def _instance(conn: Connection, instance_id: str, *, lock: bool = False) -> Any:
    return conn.execute(_INSTANCE_LOCKED if lock else _INSTANCE, {"instance_id": instance_id}).one()


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


def _queued(conn: Connection, instance_id: str, *where: Any) -> list[Any]:
    return list(
        conn.execute(
            select(NodeRow.instance_id, NodeRow.node_id, NodeRow.attempt, NodeRow.queue, NodeRow.executor)
            .where(NodeRow.instance_id == instance_id, NodeRow.status == N.QUEUED.value, *where)
            .order_by(NodeRow.id)
        ).all()
    )


@retrying()
def start(engine: Engine, instance_id: str) -> Outcome:
    """Run an instance: pending -> running, queue every ready node, and return every queued node.

    Safe to call again at any time (resume, the recovery sweep): a node already enqueued is sent once
    more, and the claim's compare-and-set makes the duplicate harmless.
    """
    now = utcnow()
    with engine.begin() as conn:
        inst = _instance(conn, instance_id)
        if inst.status == I.PENDING.value:
            move_instance(
                conn, instance_id, I.RUNNING, sources=[I.PENDING], started_at=inst.started_at or now
            )
            logs.write(conn, logs.LogEntry(instance_id, "instance running", details={"status": "running"}))
        elif inst.status != I.RUNNING.value:
            return Outcome()
        definition = catalog.load_definition(engine, inst.definition_id, conn)
        move_nodes(
            conn,
            N.QUEUED,
            NodeRow.instance_id == instance_id,
            NodeRow.pending_deps == 0,
            sources=[N.PENDING],
            attempt=NodeRow.attempt + 1,
            queued_at=now,
            not_before=None,
        )
        if inst.unfinished_nodes == 0:
            return Outcome(finished=_finish(conn, instance_id, inst, I.COMPLETED, None))
        return Outcome([dispatch_for(inst, definition, row) for row in _queued(conn, instance_id)])


@retrying()
def claim(engine: Engine, instance_id: str, node_id: str, attempt: int, worker_id: str) -> Claim | None:
    """Take a queued node for `attempt` (queued -> running) while its instance runs.

    Returns None when the claim is lost: another delivery took it, the attempt is stale, or the
    instance is paused, cancelled or finished. The message is then simply dropped.
    """
    now = utcnow()
    with engine.begin() as conn:
        if not claim_node(conn, instance_id, node_id, attempt, worker_id, now):
            return None
        row = conn.execute(_CLAIMED, {"instance_id": instance_id, "node_id": node_id}).one()
        spec = catalog.load_definition(engine, row.definition_id, conn).node(node_id)
        refs = templates.node_refs(spec.config) | (
            templates.node_refs(spec.when) if spec.when else frozenset()
        )
        outputs: dict[str, Any] = {}
        if refs:
            outputs = dict(
                conn.execute(
                    select(NodeRow.node_id, NodeRow.output).where(
                        NodeRow.instance_id == instance_id, NodeRow.node_id.in_(sorted(refs))
                    )
                ).all()
            )
        checkpoint = None
        if attempt > 1:  # a first attempt has nothing to resume from
            checkpoint = conn.execute(
                select(CheckpointRow.data)
                .where(CheckpointRow.instance_id == instance_id, CheckpointRow.node_id == node_id)
                .order_by(CheckpointRow.id.desc())
                .limit(1)
            ).scalar()
        logs.write(
            conn,
            logs.LogEntry(
                instance_id,
                "node running",
                node_id=node_id,
                executor=row.executor,
                worker_id=worker_id,
                attempt=attempt,
                details={"status": "running"},
            ),
        )
    return Claim(
        row.id,
        instance_id,
        node_id,
        attempt,
        worker_id,
        row.definition_id,
        row.workflow_name,
        row.input,
        row.external_id,
        row.max_retries,
        checkpoint,
        outputs,
        row.priority,
    )


@retrying()
def complete(
    engine: Engine, held: Claim, output: Any, *, skipped: bool = False, duration_ms: float | None = None
) -> Outcome:
    """Store the output (running -> completed, or skipped), release successors whose dependencies are
    now all done, and finish the instance when no node is left. Raises LostClaim (fencing)."""
    now = utcnow()
    target = N.SKIPPED if skipped else N.COMPLETED
    with engine.begin() as conn:
        if not finish_node(conn, held.row_id, held.attempt, target, output, now):
            raise LostClaim(f"node {held.node_id} attempt {held.attempt} no longer holds its claim")
        entries = [
            logs.LogEntry(
                held.instance_id,
                f"node {target}",
                node_id=held.node_id,
                worker_id=held.worker_id,
                attempt=held.attempt,
                duration_ms=duration_ms,
                details={"status": target.value},
            )
        ]
        outcome = _node_done(conn, engine, held, now, entries)
        logs.write(conn, *entries)  # last: the instance row is locked by now (see the module doc)
        return outcome


def _node_done(
    conn: Connection, engine: Engine, held: Claim, now: Any, entries: list[logs.LogEntry]
) -> Outcome:
    definition = catalog.load_definition(engine, held.definition_id, conn)
    successors = definition.successors.get(held.node_id, ())
    released = _release_successors(conn, held.instance_id, successors, definition, now)
    counted = {"instance_id": held.instance_id, "now": now}
    if held.priority is not None and conn.execute(_COUNT_DOWN_RUNNING, counted).rowcount == 1:
        # still running with other nodes left: nothing to read back
        routing = _Routing(held.priority, held.workflow)
        return Outcome([dispatch_for(routing, definition, row) for row in released])
    conn.execute(_COUNT_DOWN, counted)
    inst = _instance(conn, held.instance_id)
    if inst.status != I.RUNNING.value:
        return Outcome()  # paused: released nodes stay queued until resume sends them
    if inst.unfinished_nodes <= 0:
        return Outcome(finished=_finish(conn, held.instance_id, inst, I.COMPLETED, None, entries))
    return Outcome([dispatch_for(inst, definition, row) for row in released])


def _release_successors(
    conn: Connection, instance_id: str, successors: tuple[str, ...], definition: WorkflowDefinition, now: Any
) -> list[Any]:
    """Count one dependency done on every successor; queue those it was the last one of."""
    if not successors:
        return []
    if len(successors) == 1 and len(definition.node(successors[0]).depends_on) > 1:
        counted = {"b_instance": instance_id, "b_node": successors[0]}
        if conn.execute(_JOIN_COUNTED, counted).rowcount == 1:
            return []
    rows = conn.execute(_SUCCESSORS, {"instance_id": instance_id, "node_ids": list(successors)}).all()
    ready = [r for r in rows if r.pending_deps == 1 and r.status == N.PENDING.value]
    waiting = [r.id for r in rows if not (r.pending_deps == 1 and r.status == N.PENDING.value)]
    if waiting:
        conn.execute(_DEPENDENCY_DONE, {"ids": waiting})
    if not ready:
        return []
    ids = [r.id for r in ready]
    moved = queue_released(conn, ids, now)
    if moved != len(ready):  # cannot happen while the rows are locked; read back rather than assume
        return _queued(conn, instance_id, NodeRow.id.in_(ids))
    return [_Released(r.instance_id, r.node_id, r.attempt + 1, r.queue, r.executor) for r in ready]


@retrying()
def fail(
    engine: Engine,
    held: Claim,
    error: dict[str, Any],
    *,
    retryable: bool = True,
    duration_ms: float | None = None,
) -> Outcome:
    """Record a failed attempt: queue the next attempt with backoff while retries are left, else fail
    the node and its instance. Raises LostClaim (fencing)."""
    now = utcnow()
    with engine.begin() as conn:
        bumped = conn.execute(
            update(NodeRow)
            .where(
                NodeRow.id == held.row_id, NodeRow.status == N.RUNNING.value, NodeRow.attempt == held.attempt
            )
            .values(failures=NodeRow.failures + 1, error=error, updated_at=now)
        ).rowcount
        if not bumped:
            raise LostClaim(f"node {held.node_id} attempt {held.attempt} no longer holds its claim")
        # lock the instance row before the log rows below take their shared lock on it (module doc)
        inst = _instance(conn, held.instance_id, lock=True)
        failures = conn.execute(select(NodeRow.failures).where(NodeRow.id == held.row_id)).scalar_one()
        definition = catalog.load_definition(engine, held.definition_id, conn)
        spec = definition.node(held.node_id)
        retries = spec.retries if spec.retries is not None else (held.max_retries or 0)
        entry = logs.LogEntry(
            held.instance_id,
            f"node attempt {held.attempt} failed: {error.get('message')}",
            level="error",
            node_id=held.node_id,
            worker_id=held.worker_id,
            attempt=held.attempt,
            duration_ms=duration_ms,
            details=error,
        )
        logs.write(conn, entry)
        if retryable and failures <= retries:
            delay = min(MAX_RETRY_DELAY_S, spec.retry_delay_ms / 1000 * 2 ** (failures - 1))
            move_node(
                conn,
                held.row_id,
                N.QUEUED,
                sources=[N.RUNNING],
                fence=held.attempt,
                attempt=held.attempt + 1,
                queued_at=now,
                heartbeat_at=None,
                not_before=now + timedelta(seconds=delay),
            )
            logs.write(
                conn,
                logs.LogEntry(
                    held.instance_id,
                    f"node retry {failures}/{retries} in {delay:g}s",
                    level="warning",
                    node_id=held.node_id,
                    attempt=held.attempt + 1,
                    details={"status": "queued"},
                ),
            )
            if inst.status != I.RUNNING.value:
                return Outcome()
            rows = _queued(conn, held.instance_id, NodeRow.id == held.row_id)
            return Outcome([dispatch_for(inst, definition, row, delay) for row in rows])
        move_node(
            conn,
            held.row_id,
            N.FAILED,
            sources=[N.RUNNING],
            fence=held.attempt,
            finished_at=now,
            heartbeat_at=None,
        )
        if inst.status not in (I.RUNNING.value, I.PAUSED.value):
            return Outcome()
        failure = {
            "code": "NODE_FAILED",
            "nodeId": held.node_id,
            "message": str(error.get("message")),
            "details": error,
        }
        return Outcome(finished=_finish(conn, held.instance_id, inst, I.FAILED, failure))


def _finish(
    conn: Connection,
    instance_id: str,
    inst: Any,
    status: I,
    error: dict[str, Any] | None,
    entries: list[logs.LogEntry] | None = None,
) -> Finished | None:
    """Move the instance to its end; its log line goes to `entries` when given (written by the caller
    with its own), else is written here."""
    now = utcnow()
    if not move_instance(conn, instance_id, status, finished_at=now, error=error):
        return None
    entry = logs.LogEntry(
        instance_id,
        f"instance {status}",
        level="error" if error else "info",
        details={"status": status.value, "error": error},
    )
    if entries is None:
        logs.write(conn, entry)
    else:
        entries.append(entry)
    return Finished(
        instance_id, status.value, inst.parent_instance_id, inst.parent_node_id, inst.callback_url
    )


def finish_instance(
    conn: Connection, instance_id: str, status: I, error: dict[str, Any] | None
) -> Finished | None:
    """End an instance from outside the node path (timeouts, cancel); None if it had already ended."""
    return _finish(conn, instance_id, _instance(conn, instance_id), status, error)
