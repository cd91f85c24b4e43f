"""The end of a node's attempt: store its output and release its successors, or record its failure
and queue a retry or fail the instance.

Lock order in a transaction that ends a node: the node row, then either (a node with successors)
the log rows and the successor rows (id order), or (a sink, and every failure) the instance row and
only then the log rows. A log row's foreign key takes a shared lock on the instance row; a shared
lock taken first and upgraded later is how two finishers of one instance would deadlock, so only a
transaction that never writes the instance row may write its log rows before its other rows.

A map's item (`map_items.py`) releases no successor: its end locks its map's row after its own (and,
in a failure, before the instance row), counts the map down, and the end of the last item completes
the map through the path above.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update

from orchestrator import catalog, logs, map_items, storable, unreachable
from orchestrator.db import retrying
from orchestrator.definitions import WorkflowDefinition, item_of
from orchestrator.errors import LostClaim, NotStorable
from orchestrator.models import InstanceRow, NodeRow, utcnow
from orchestrator.outcomes import Claim, InstanceRouting, Outcome, QueuedNode, Routing, dispatch_for
from orchestrator.retry import RetryPolicy
from orchestrator.scheduling import QUEUED_NODE, end_instance, instance_row, queued_rows
from orchestrator.states import FINISHED_INSTANCE
from orchestrator.states import InstanceStatus as I
from orchestrator.states import NodeStatus as N
from orchestrator.transitions import finish_node, move_node, queue_released

# the rows a finished node may release, locked in id order so concurrent finishers of a join decide
# one by one; everything a Dispatch needs comes with them
_SUCCESSORS = (
    select(*QUEUED_NODE, NodeRow.pending_deps, NodeRow.status)
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
# the common end of a sink: its instance runs and other sinks are left; the row count says so
_COUNT_DOWN_RUNNING = (
    update(InstanceRow)
    .where(
        InstanceRow.id == bindparam("instance_id"),
        InstanceRow.status == I.RUNNING.value,
        InstanceRow.unfinished_sinks > 1,
    )
    .values(unfinished_sinks=InstanceRow.unfinished_sinks - 1, updated_at=bindparam("now"))
)
_COUNT_DOWN = (
    update(InstanceRow)
    .where(InstanceRow.id == bindparam("instance_id"))
    .values(unfinished_sinks=InstanceRow.unfinished_sinks - 1, updated_at=bindparam("now"))
)


@retrying()
def complete(
    engine: Engine,
    held: Claim,
    output: Any,
    *,
    skipped: bool = False,
    duration_ms: float | None = None,
    source: N = N.RUNNING,
) -> Outcome:
    """Store the output (running -> completed, or skipped; a wait or sleep node from `waiting`), release
    successors whose dependencies are now all done, and finish the instance when no node is left.
    Raises LostClaim (fencing), and NotStorable for an output the store cannot hold (`storable.py`):
    the caller fails the node."""
    storable.check(engine, output, NotStorable, f"the output of node {held.node_id}")
    with held.unwritten.taken() as earlier, engine.begin() as conn:
        return complete_in(
            conn,
            engine,
            held,
            output,
            skipped=skipped,
            duration_ms=duration_ms,
            source=source,
            earlier=earlier,
        )


def complete_in(
    conn: Connection,
    engine: Engine,
    held: Claim,
    output: Any,
    *,
    skipped: bool = False,
    duration_ms: float | None = None,
    source: N = N.RUNNING,
    earlier: list[logs.LogEntry] | tuple[logs.LogEntry, ...] = (),
) -> Outcome:
    """`complete` in the caller's transaction (whose first lock must be the node row, see the module
    doc), with `earlier` log lines written before its own; the output is checked by the caller."""
    now = utcnow()
    target = N.SKIPPED if skipped else N.COMPLETED
    with storable.refusals(NotStorable, f"the output of node {held.node_id}"):
        finished = finish_node(conn, held.row_id, held.attempt, target, output, now, source)
    if not finished:
        raise LostClaim(f"node {held.node_id} attempt {held.attempt} no longer holds its claim")
    entries = [
        *earlier,
        logs.LogEntry(
            held.instance_id,
            f"node {target}",
            node_id=held.node_id,
            worker_id=held.worker_id,
            attempt=held.attempt,
            duration_ms=duration_ms,
            details={"status": target.value},
        ),
    ]
    map_id = map_items.map_of(held.node_id)
    if map_id is not None:
        return _item_completed(conn, engine, held, map_id, now, entries)
    return _node_done(conn, engine, held, now, entries)


def _item_completed(
    conn: Connection, engine: Engine, held: Claim, map_id: str, now: Any, entries: list[logs.LogEntry]
) -> Outcome:
    """An item completed (or its `when` skipped it). The common case, an item of a running map with
    others left, is one statement that counts it (as a join's `_JOIN_COUNTED`); the last one, or one
    of a map that ended, takes the locking path."""
    if map_items.count_down_running(conn, held.instance_id, map_id, now):
        logs.write(conn, *entries)
        return _next_item(conn, engine, held, map_id, now)
    head = map_items.lock_map(conn, held.instance_id, map_id)
    return _item_ended(conn, engine, held, head, now, entries)


def _next_item(conn: Connection, engine: Engine, held: Claim, map_id: str, now: Any) -> Outcome:
    """Queue the next pending item of a map whose `maxConcurrency` holds items back (its row locked),
    and return it to be sent if the instance runs (else resume sends it)."""
    definition = catalog.load_definition(engine, held.definition_id, conn)
    if definition.node(map_id).max_concurrency is None:
        return Outcome()  # every item was queued when the map started
    queued = map_items.queue_next(conn, held.instance_id, map_id, 1, now)
    if not queued:
        return Outcome()
    inst = instance_row(conn, held.instance_id)
    if inst.status != I.RUNNING.value:
        return Outcome()  # queued all the same: resume sends it
    return Outcome([dispatch_for(inst, definition, row) for row in queued])


def _item_ended(
    conn: Connection,
    engine: Engine,
    held: Claim,
    head: map_items.MapHead,
    now: Any,
    entries: list[logs.LogEntry],
) -> Outcome:
    """An item of the map `head` (locked) ended for good: count it, queue the next one the map's
    `maxConcurrency` held back, or, for the last one, complete the map with its items' outputs."""
    if not head.counting:  # the map ended before this item (it failed, was cancelled) or was reset
        logs.write(conn, *entries)
        return Outcome()
    left = map_items.count_down(conn, head, now)
    if left > 0:
        logs.write(conn, *entries)
        return _next_item(conn, engine, held, head.node_id, now)
    try:
        output = map_items.output(conn, held.instance_id, head.node_id)
        reason = storable.problem(output, storable.max_depth(engine))
        if reason is not None:
            raise NotStorable(f"the output of the map cannot be stored: {reason}")
    except NotStorable as exc:  # the map's, not the item's: the item keeps its own output
        unstorable = {"code": NotStorable.code, "message": exc.message}
        return _fail_map(conn, engine, held.instance_id, head, unstorable, now, entries)
    if not finish_node(conn, head.id, head.attempt, N.COMPLETED, output, now):
        raise LostClaim(f"map node {head.node_id} moved on while its row was locked")
    entries.append(
        logs.LogEntry(
            held.instance_id,
            f"node {N.COMPLETED}",
            node_id=head.node_id,
            attempt=head.attempt,
            details={"status": N.COMPLETED.value, "items": len(output["items"]), "failed": output["failed"]},
        )
    )
    whole = Claim(
        row_id=head.id,
        instance_id=held.instance_id,
        node_id=head.node_id,
        attempt=head.attempt,
        worker_id=head.worker_id or "map",
        definition_id=held.definition_id,
        workflow=held.workflow,
        last_checkpoint=None,
        outputs={},
        priority=held.priority,
    )
    return _node_done(conn, engine, whole, now, entries)


def _item_failed(
    conn: Connection,
    engine: Engine,
    held: Claim,
    head: map_items.MapHead,
    definition: WorkflowDefinition,
    error: dict[str, Any],
    now: Any,
) -> Outcome:
    """An item failed for good: with `onItemFailure` "continue" it is counted like any end (its index
    goes to the map's `failed`); with "fail" it fails the map node, and so the instance."""
    if not head.counting:
        return Outcome()
    if definition.node(head.node_id).on_item_failure == "continue":
        return _item_ended(conn, engine, held, head, now, [])
    found = item_of(held.node_id)
    index = None if found is None else found[1]
    map_error = {
        "code": "ITEM_FAILED",
        "message": f"item {index} ({held.node_id}) failed: {error.get('message')}",
        "index": index,
        "nodeId": held.node_id,
        "details": error,
    }
    return _fail_map(conn, engine, held.instance_id, head, map_error, now, [])


def _fail_map(
    conn: Connection,
    engine: Engine,
    instance_id: str,
    head: map_items.MapHead,
    map_error: dict[str, Any],
    now: Any,
    entries: list[logs.LogEntry],
) -> Outcome:
    """Fail the map node `head` (locked) and its instance; `entries` are written after the instance
    row is locked (module doc)."""
    move_node(
        conn,
        head.id,
        N.FAILED,
        sources=[N.RUNNING],
        fence=head.attempt,
        finished_at=now,
        heartbeat_at=None,
        error=map_error,
    )
    failure = {
        "code": "NODE_FAILED",
        "nodeId": head.node_id,
        "message": map_error["message"],
        "details": map_error,
    }
    # None when the instance had ended already (another node failed it, it was cancelled)
    finished = unreachable.fail_instance(conn, engine, instance_id, head.node_id, failure, now)
    failed = logs.LogEntry(
        instance_id,
        f"node failed: {map_error['message']}",
        level="error",
        node_id=head.node_id,
        attempt=head.attempt,
        details={"status": N.FAILED.value, **map_error},
    )
    logs.write(conn, *entries, failed)
    return Outcome(finished=finished)


def item_failed_for_good(
    conn: Connection, engine: Engine, instance_id: str, node_id: str, error: dict[str, Any], now: Any
) -> Outcome:
    """An item the sweep has just failed (it lost its worker too often) ends as an item that fails for
    good in `fail` does. Call it in the transaction that failed the item's row."""
    map_id = map_items.map_of(node_id)
    assert map_id is not None
    head = map_items.lock_map(conn, instance_id, map_id)
    inst = instance_row(conn, instance_id, lock=True)
    definition = catalog.load_definition(engine, inst.definition_id, conn)
    held = Claim(
        row_id=0,
        instance_id=instance_id,
        node_id=node_id,
        attempt=0,
        worker_id="recovery",
        definition_id=inst.definition_id,
        workflow=inst.workflow_name,
        last_checkpoint=None,
        outputs={},
        priority=inst.priority,
    )
    return _item_failed(conn, engine, held, head, definition, error, now)


def _node_done(
    conn: Connection, engine: Engine, held: Claim, now: Any, entries: list[logs.LogEntry]
) -> Outcome:
    definition = catalog.load_definition(engine, held.definition_id, conn)
    successors = definition.successors.get(held.node_id, ())
    if successors:
        # Not a sink: the instance row is not written, so finishers of one instance do not queue up
        # behind it; the release itself checks that the instance still runs (see below). The log
        # rows go first here: the successor rows (a join's above all) are the ones other finishers
        # wait for, so they are locked last, just before the commit.
        logs.write(conn, *entries)
        released = _release_successors(conn, held.instance_id, successors, definition, now)
        if not released:
            return Outcome()
        routing: Routing = (
            InstanceRouting(held.priority, held.workflow, held.definition_id)
            if held.priority is not None
            else instance_row(conn, held.instance_id)
        )
        return Outcome([dispatch_for(routing, definition, row) for row in released])
    # a sink: the log rows go last, once the instance row is locked (see the module doc)
    counted = {"instance_id": held.instance_id, "now": now}
    if conn.execute(_COUNT_DOWN_RUNNING, counted).rowcount == 1:
        logs.write(conn, *entries)
        return Outcome()  # still running with other sinks left: nothing to read back
    conn.execute(_COUNT_DOWN, counted)
    inst = instance_row(conn, held.instance_id)
    finished = None
    if inst.status == I.RUNNING.value and inst.unfinished_sinks <= 0:
        finished = end_instance(conn, held.instance_id, inst, I.COMPLETED, None, entries)
    # else paused: resume finishes it (scheduling.start)
    logs.write(conn, *entries)
    return Outcome(finished=finished)


def _release_successors(
    conn: Connection, instance_id: str, successors: tuple[str, ...], definition: WorkflowDefinition, now: Any
) -> list[QueuedNode]:
    """Count one dependency done on every successor; queue those it was the last one of, and return
    them to be sent if the instance still runs (else resume sends them)."""
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
    moved = queue_released(conn, ids, now, while_running=instance_id)
    if moved == 0:
        # the instance is paused (or has ended): queue them all the same, to be sent on resume
        queue_released(conn, ids, now)
        return []
    if moved != len(ready):  # cannot happen while the rows are locked; read back rather than assume
        return queued_rows(conn, instance_id, NodeRow.id.in_(ids))
    return [
        QueuedNode(r.id, r.instance_id, r.node_id, r.attempt + 1, r.queue, r.executor, r.type) for r in ready
    ]


@retrying()
def fail(
    engine: Engine,
    held: Claim,
    error: dict[str, Any],
    *,
    retryable: bool = True,
    duration_ms: float | None = None,
    source: N = N.RUNNING,
) -> Outcome:
    """Record a failed attempt (of a running node; a wait's timeout fails it from `waiting`): queue
    the next attempt with backoff while retries are left, else fail the node and its instance.
    Raises LostClaim (fencing)."""
    now = utcnow()
    with held.unwritten.taken() as earlier, engine.begin() as conn:
        bumped = conn.execute(
            update(NodeRow)
            .where(NodeRow.id == held.row_id, NodeRow.status == source.value, NodeRow.attempt == held.attempt)
            .values(failures=NodeRow.failures + 1, error=error, updated_at=now)
        ).rowcount
        if not bumped:
            raise LostClaim(f"node {held.node_id} attempt {held.attempt} no longer holds its claim")
        # an item locks its map's row before the instance row, as its completion does (module doc)
        map_id = map_items.map_of(held.node_id)
        head = None if map_id is None else map_items.lock_map(conn, held.instance_id, map_id)
        # lock the instance row before the log rows below take their shared lock on it (module doc)
        inst = instance_row(conn, held.instance_id, lock=True)
        failures = conn.execute(select(NodeRow.failures).where(NodeRow.id == held.row_id)).scalar_one()
        definition = catalog.load_definition(engine, held.definition_id, conn)
        spec = definition.node(held.node_id)
        policy = RetryPolicy.of(spec, inst.max_retries)
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
        logs.write(conn, *earlier, entry)
        # an instance that has already failed (another node failed for good) sends nothing more: a
        # retry queued now would wait for ever, so this attempt's failure is final too
        wait = policy.next_delay(failures) if retryable else None
        if wait is not None and inst.status not in FINISHED_INSTANCE:
            delay = wait.total_seconds()
            move_node(
                conn,
                held.row_id,
                N.QUEUED,
                sources=[source],
                fence=held.attempt,
                attempt=held.attempt + 1,
                queued_at=now,
                heartbeat_at=None,
                not_before=now + wait,
            )
            logs.write(
                conn,
                logs.LogEntry(
                    held.instance_id,
                    f"node retry {failures}/{policy.retries} in {delay:g}s",
                    level="warning",
                    node_id=held.node_id,
                    attempt=held.attempt + 1,
                    details={"status": "queued"},
                ),
            )
            if inst.status != I.RUNNING.value:
                return Outcome(retrying=True)
            rows = queued_rows(conn, held.instance_id, NodeRow.id == held.row_id)
            return Outcome([dispatch_for(inst, definition, row, delay) for row in rows], retrying=True)
        move_node(
            conn,
            held.row_id,
            N.FAILED,
            sources=[source],
            fence=held.attempt,
            finished_at=now,
            heartbeat_at=None,
        )
        if head is not None:
            return _item_failed(conn, engine, held, head, definition, error, now)
        if inst.status not in (I.RUNNING.value, I.PAUSED.value):
            return Outcome()
        failure = {
            "code": "NODE_FAILED",
            "nodeId": held.node_id,
            "message": str(error.get("message")),
            "details": error,
        }
        return Outcome(
            finished=unreachable.fail_instance(conn, engine, held.instance_id, held.node_id, failure, now)
        )
