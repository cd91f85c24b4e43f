"""The start of the per-node path: start an instance, claim a node; and ending an instance.

Every function here is one short transaction that returns what must be enqueued *after* it commits
(`outcomes.Dispatch`); the core never talks to Celery itself. The end of a node's attempt (its
output, its successors, its failure) is `completion.py`.

The node path is kept to few round trips (docs/BENCHMARKS.md): a claim is one UPDATE that commits as
it runs (its message carries what it would otherwise read back; its log line is written by the
attempt's next transaction); a completion is UPDATE, log INSERT, successors SELECT ... FOR UPDATE and
one UPDATE releasing them (a join still held back by other dependencies: one guarded UPDATE instead of
both), and COMMIT; only a sink's completion also counts its instance down. Statements used on every
node are built once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, bindparam, select

from orchestrator import callbacks, catalog, key_limits, logs
from orchestrator.db import autocommit, retrying
from orchestrator.errors import StartTooEarly
from orchestrator.models import CheckpointRow, InstanceRow, NodeRow, utcnow
from orchestrator.outcomes import (
    Claim,
    Finished,
    MapItem,
    NodeFacts,
    Outcome,
    QueuedNode,
    UnwrittenLog,
    dispatch_for,
)
from orchestrator.states import InstanceStatus as I
from orchestrator.states import NodeStatus as N
from orchestrator.transitions import claim_node, move_instance, move_node, queue_ready, start_instance

log = logging.getLogger(__name__)

# run in a claim's transaction with the start time it records: 0 to start, else seconds to wait
StartCheck = Callable[[Connection, datetime], float]


class InstanceHead(NamedTuple):
    """What the node path reads of an instance (`instance_row`)."""

    status: str
    priority: str
    workflow_name: str
    definition_id: int
    unfinished_sinks: int
    parent_instance_id: str | None
    parent_node_id: str | None
    callback_url: str | None
    started_at: datetime | None
    max_retries: int | None
    concurrency_key: str | None
    concurrency_limit: int | None


_INSTANCE = select(
    InstanceRow.status,
    InstanceRow.priority,
    InstanceRow.workflow_name,
    InstanceRow.definition_id,
    InstanceRow.unfinished_sinks,
    InstanceRow.parent_instance_id,
    InstanceRow.parent_node_id,
    InstanceRow.callback_url,
    InstanceRow.started_at,
    InstanceRow.max_retries,
    InstanceRow.concurrency_key,
    InstanceRow.concurrency_limit,
).where(InstanceRow.id == bindparam("instance_id"))
_INSTANCE_LOCKED = _INSTANCE.with_for_update()
_CLAIMED = (
    select(NodeRow.id, InstanceRow.definition_id, InstanceRow.workflow_name, InstanceRow.priority)
    .join(InstanceRow, InstanceRow.id == NodeRow.instance_id)
    .where(NodeRow.instance_id == bindparam("instance_id"), NodeRow.node_id == bindparam("node_id"))
)


_ITEM = select(NodeRow.item_index, NodeRow.item).where(NodeRow.id == bindparam("row_id"))
_INSTANCE_DATA = select(InstanceRow.input, InstanceRow.external_id).where(
    InstanceRow.id == bindparam("instance_id")
)


def instance_row(conn: Connection, instance_id: str, *, lock: bool = False) -> InstanceHead:
    row = conn.execute(_INSTANCE_LOCKED if lock else _INSTANCE, {"instance_id": instance_id}).one()
    return InstanceHead._make(row)


# the columns of a queued node that its message needs, in `QueuedNode`'s order: the one node select
QUEUED_NODE = (
    NodeRow.id,
    NodeRow.instance_id,
    NodeRow.node_id,
    NodeRow.attempt,
    NodeRow.queue,
    NodeRow.executor,
    NodeRow.type,
)
_QUEUED = (
    select(*QUEUED_NODE)
    .where(NodeRow.instance_id == bindparam("instance_id"), NodeRow.status == N.QUEUED.value)
    .order_by(NodeRow.id)
)


def queued_rows(conn: Connection, instance_id: str, *where: Any) -> list[QueuedNode]:
    """The instance's queued nodes (those matching `where` too), as `dispatch_for` takes them."""
    statement = _QUEUED.where(*where) if where else _QUEUED
    return [QueuedNode._make(row) for row in conn.execute(statement, {"instance_id": instance_id})]


@retrying()
def start(engine: Engine, instance_id: str, *, early: bool = False) -> Outcome:
    """Run an instance: pending -> running, queue every ready node, and return every queued node.

    A pending instance whose startAt has not come stays pending (nothing to send) unless `early` (a
    manual start, a retry). Safe to call again at any time (resume, the recovery sweep): a node
    already enqueued is sent once more, and the claim's compare-and-set makes the duplicate harmless.
    """
    now = utcnow()
    with engine.begin() as conn:
        inst = instance_row(conn, instance_id)
        if inst.status == I.PENDING.value:
            if inst.concurrency_key is not None and not key_limits.may_start(conn, instance_id, inst, now):
                return Outcome()  # held back by its concurrency key; an end of another sends it
            if not start_instance(conn, instance_id, now, early=early):
                return Outcome()  # not due yet; or started meanwhile by a caller that sends its nodes
            logs.write(conn, logs.LogEntry(instance_id, "instance running", details={"status": "running"}))
        elif inst.status != I.RUNNING.value:
            return Outcome()
        definition = catalog.load_definition(engine, inst.definition_id, conn)
        queue_ready(conn, instance_id, now)
        if inst.unfinished_sinks == 0:
            return Outcome(finished=end_instance(conn, instance_id, inst, I.COMPLETED, None))
        return Outcome([dispatch_for(inst, definition, row) for row in queued_rows(conn, instance_id)])


def claim(
    engine: Engine,
    instance_id: str,
    node_id: str,
    attempt: int,
    worker_id: str,
    facts: NodeFacts | None = None,
    start_check: StartCheck | None = None,
) -> Claim | None:
    """Take a queued node for `attempt` (queued -> running) while its instance runs.

    Returns None when the claim is lost: another delivery took it, the attempt is stale, or the
    instance is paused, cancelled or finished. The message is then simply dropped.

    `start_check` (a node under a rate: `admission.start_wait`) runs in the claim's transaction with
    the time the claim records as the start; a wait it returns rolls the claim back and raises
    StartTooEarly, so only starts the rate allows are ever recorded.

    With the `facts` a message carries, the claim is one statement that commits as it runs; the
    "node running" line is written by the attempt's first transaction (`Claim.unwritten`). Reads of
    other nodes' outputs and of the last checkpoint follow only when the node needs them.
    """
    now = utcnow()
    if start_check is not None:
        facts = _claim_at_its_turn(engine, instance_id, node_id, attempt, worker_id, now, facts, start_check)
    elif facts is None:
        facts = _claim_reading_facts(engine, instance_id, node_id, attempt, worker_id, now)
    elif not _claim_alone(engine, instance_id, node_id, attempt, worker_id, now):
        return None
    if facts is None:
        return None
    # the claim is committed: what follows only reads, and may be retried on its own. Should it fail
    # all the same, the claim is undone: a node left running with nobody working on it would wait
    # for a heartbeat timeout (and a sub-workflow node, which has no heartbeat, for ever), while a
    # queued one is resent by the recovery sweep, as if this message had never come.
    try:
        return _held(engine, instance_id, node_id, attempt, worker_id, facts, now)
    except Exception:
        _unclaim(engine, facts.row_id, attempt, node_id)
        raise


@retrying()
def _claim_alone(
    engine: Engine, instance_id: str, node_id: str, attempt: int, worker_id: str, now: datetime
) -> bool:
    with autocommit(engine) as conn:
        return claim_node(conn, instance_id, node_id, attempt, worker_id, now)


@retrying()
def _claim_reading_facts(
    engine: Engine, instance_id: str, node_id: str, attempt: int, worker_id: str, now: datetime
) -> NodeFacts | None:
    with engine.begin() as conn:
        if not claim_node(conn, instance_id, node_id, attempt, worker_id, now):
            return None
        row = conn.execute(_CLAIMED, {"instance_id": instance_id, "node_id": node_id}).one()
        return NodeFacts(row.id, row.definition_id, row.workflow_name, row.priority)


@retrying()
def _claim_at_its_turn(
    engine: Engine,
    instance_id: str,
    node_id: str,
    attempt: int,
    worker_id: str,
    now: datetime,
    facts: NodeFacts | None,
    start_check: StartCheck,
) -> NodeFacts | None:
    with engine.begin() as conn:
        if not claim_node(conn, instance_id, node_id, attempt, worker_id, now):
            return None
        if facts is None:
            row = conn.execute(_CLAIMED, {"instance_id": instance_id, "node_id": node_id}).one()
            facts = NodeFacts(row.id, row.definition_id, row.workflow_name, row.priority)
        wait = start_check(conn, now)
        if wait > 0:
            raise StartTooEarly(wait)  # leaving the block rolls the claim back
        return facts


@retrying()
def _held(
    engine: Engine,
    instance_id: str,
    node_id: str,
    attempt: int,
    worker_id: str,
    facts: NodeFacts,
    now: datetime,
) -> Claim:
    spec = catalog.load_definition(engine, facts.definition_id).node(node_id)
    if spec.node_refs or attempt > 1:
        with engine.connect() as conn:
            outputs, checkpoint = _earlier_results(conn, instance_id, node_id, attempt, spec.node_refs)
    else:
        outputs, checkpoint = {}, None
    map_item = None
    if "[" in node_id:  # a map's item (ids of other nodes have no bracket): its value is in its row
        with engine.connect() as conn:
            row = conn.execute(_ITEM, {"row_id": facts.row_id}).one()
        map_item = MapItem(row.item_index, row.item)
    running = logs.LogEntry(
        instance_id,
        "node running",
        node_id=node_id,
        executor=spec.executor,
        worker_id=worker_id,
        attempt=attempt,
        details={"status": "running"},
        at=now,
    )
    return Claim(
        row_id=facts.row_id,
        instance_id=instance_id,
        node_id=node_id,
        attempt=attempt,
        worker_id=worker_id,
        definition_id=facts.definition_id,
        workflow=facts.workflow,
        last_checkpoint=checkpoint,
        outputs=outputs,
        priority=facts.priority,
        unwritten=UnwrittenLog(running),
        map_item=map_item,
    )


def _unclaim(engine: Engine, row_id: int, attempt: int, node_id: str) -> None:
    """running -> queued for the same attempt, fenced on it: the claim had not been acted on."""
    try:
        with engine.begin() as conn:
            move_node(
                conn,
                row_id,
                N.QUEUED,
                sources=[N.RUNNING],
                fence=attempt,
                worker_id=None,
                started_at=None,
                heartbeat_at=None,
            )
    except Exception:  # the caller's error is the one to raise; the sweep hands the node back later
        log.exception("could not undo the claim of %s attempt %s", node_id, attempt)


def _earlier_results(
    conn: Connection, instance_id: str, node_id: str, attempt: int, refs: frozenset[str]
) -> tuple[dict[str, Any], Any]:
    """The outputs of the nodes in `refs`, and the newest checkpoint of an attempt after the first."""
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
    return outputs, checkpoint


@retrying()
def instance_data(engine: Engine, instance_id: str) -> tuple[dict[str, Any], str | None]:
    """The instance's input and externalId, read only by a node that uses them."""
    with engine.connect() as conn:
        row = conn.execute(_INSTANCE_DATA, {"instance_id": instance_id}).one()
    return row.input, row.external_id


def end_instance(
    conn: Connection,
    instance_id: str,
    inst: InstanceHead,
    status: I,
    error: dict[str, Any] | None,
    entries: list[logs.LogEntry] | None = None,
    *,
    sources: Collection[I] | None = None,
) -> Finished | None:
    """The one way an instance ends: move it to `status` (from `sources`, default every legal one)
    with its finish time, error and callback delivery, log it, and return the `Finished` to act on;
    None if it was not in a source state (it had ended meanwhile). Its log line goes to `entries`
    when given (written by the caller with its own), else is written here."""
    now = utcnow()
    ended = {"finished_at": now, "error": error, **callbacks.on_end(inst.callback_url, now)}
    if not move_instance(conn, instance_id, status, sources=sources, **ended):
        return None
    entry = logs.LogEntry(
        instance_id,
        f"instance {status}",
        level="error" if status is I.FAILED else "info",
        details={"status": status.value, "error": error},
    )
    if entries is None:
        logs.write(conn, entry)
    else:
        entries.append(entry)
    return Finished(
        instance_id,
        status.value,
        inst.parent_instance_id,
        inst.parent_node_id,
        inst.callback_url,
        inst.concurrency_key,
    )


def finish_instance(
    conn: Connection,
    instance_id: str,
    status: I,
    error: dict[str, Any] | None,
    *,
    sources: Collection[I] | None = None,
) -> Finished | None:
    """End an instance from outside the node path (timeouts, cancel); None if it had already ended
    (or, with `sources`, was in none of them)."""
    return end_instance(conn, instance_id, instance_row(conn, instance_id), status, error, sources=sources)
