"""`map` nodes: one execution of the map's `node` body per item of the list `over` renders to.

Starts: the claiming worker renders `over` and, in one transaction fenced on the map's attempt,
writes one item row per item (`map_items.py`), queues the first `maxConcurrency` of them (all without
it) and frees its slot; the map node stays running, with no lease, while its items run. An item is a
node of its own (attempts, heartbeats, checkpoints, retries of its body, its Celery task, the sweep).
Completes: the end of its last item completes it (`completion.py`) with `{"items": [outputs in index
order], "failed": [indices]}`; an empty list completes it at once with `{"items": [], "failed": []}`
(`failed` is always there, so a template reading it resolves). With `onItemFailure` "fail" the first
item that fails for good fails it. Recovered by the sweep when it runs with no items started for its
run (`items_left` unset) and its claim is a heartbeat timeout old: its worker died before the items.
A node that fails its instance elsewhere ends a running map too (skipped, `unreachable.py`): its items
not started are skipped, so it would never complete, and a retry of the instance runs it again.

A run after an instance retry keeps the items that completed and runs the others again (the items
already there are reused: `over` is not rendered again); a retry with `all`, or one that reaches the
map from upstream, drops the items first (`lifecycle.py`), so `over` is rendered anew.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, insert, select, update

from orchestrator import catalog, completion, executors, logs, map_items, storable, templates, unreachable
from orchestrator.db import retrying
from orchestrator.definitions import MAX_MAP_ITEMS, NodeSpec, item_id
from orchestrator.errors import LostClaim, NotStorable, OrchestratorError
from orchestrator.models import InstanceRow, NodeRow, utcnow
from orchestrator.outcomes import Claim, InstanceRouting, Outcome, dispatch_for
from orchestrator.scope import node_scope
from orchestrator.states import InstanceStatus as I
from orchestrator.states import NodeStatus as N
from orchestrator.transitions import move_nodes

# rows per INSERT statement: 10,000 items go in a few round trips, each statement well under a packet
INSERT_BATCH = 1000
_INSERT = insert(NodeRow)


class MapOverInvalid(OrchestratorError):
    """`over` did not render to a list the map can run: not a list, or too long. Not retried."""

    code = "MAP_OVER_INVALID"


def start(engine: Engine, held: Claim, spec: NodeSpec) -> Outcome:
    """Start the map's items (or, after a retry, those that did not complete), or complete an empty
    map at once. Raises MapOverInvalid, TemplateError, LostClaim."""
    with engine.connect() as conn:
        existing = conn.execute(
            select(func.count()).where(
                NodeRow.instance_id == held.instance_id, NodeRow.map_node_id == held.node_id
            )
        ).scalar_one()
    values: list[Any] | None = None
    if not existing:
        values = _items_of(engine, held, spec)
        if not values:
            return completion.complete(engine, held, {"items": [], "failed": []})
    return _start_items(engine, held, spec, values)


def _items_of(engine: Engine, held: Claim, spec: NodeSpec) -> list[Any]:
    scope, _ = node_scope(engine, held, spec)
    values = templates.render(spec.over, scope)
    if not isinstance(values, list):
        raise MapOverInvalid(f"over ({spec.over}) must be a list; it is {_kind(values)}")
    if len(values) > MAX_MAP_ITEMS:
        raise MapOverInvalid(
            f"over ({spec.over}) has {len(values)} items; a map runs at most {MAX_MAP_ITEMS}"
        )
    return values


def _kind(value: Any) -> str:
    names = {dict: "an object", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


@retrying()
def _start_items(engine: Engine, held: Claim, spec: NodeSpec, values: list[Any] | None) -> Outcome:
    """Write (or, with `values` None, reset) the items and queue the first ones, fenced on the map's
    attempt; returns what to send. A rerun that finds every item completed completes the map in the
    same transaction: committed apart, a crash between the two would leave it running with no item
    left to end it and its items started (which the sweep does not recover)."""
    now = utcnow()
    body = spec.item
    assert body is not None  # the validator requires a map's node
    with held.unwritten.taken() as earlier, engine.begin() as conn:
        # the fence, and the lock of the map row the items' ends take
        if not conn.execute(
            update(NodeRow)
            .where(
                NodeRow.id == held.row_id, NodeRow.status == N.RUNNING.value, NodeRow.attempt == held.attempt
            )
            .values(heartbeat_at=now, updated_at=now)
        ).rowcount:
            raise LostClaim(f"node {held.node_id} attempt {held.attempt} no longer holds its claim")
        cap = spec.max_concurrency
        if values is not None:
            instance_queue = conn.execute(
                select(InstanceRow.queue).where(InstanceRow.id == held.instance_id)
            ).scalar_one()
            queue = body.queue or instance_queue or _default_queue(body.executor)
            _insert_items(conn, held, body, queue, values, cap, now)
            total = left = len(values)
        else:
            total, left, running = _reset_items(conn, held, now)
            cap_left = None if cap is None else cap - running
            map_items.queue_next(conn, held.instance_id, held.node_id, cap_left, now)
        conn.execute(
            update(NodeRow).where(NodeRow.id == held.row_id).values(items_total=total, items_left=left)
        )
        started = logs.LogEntry(
            held.instance_id,
            f"map started: {left} of {total} items to run"
            + ("" if cap is None else f", at most {cap} at once"),
            node_id=held.node_id,
            worker_id=held.worker_id,
            attempt=held.attempt,
            details={"status": N.RUNNING.value, "items": total, "left": left},
        )
        if left == 0:  # a rerun of a map whose items had all completed
            output = map_items.output(conn, held.instance_id, held.node_id)
            storable.check(engine, output, NotStorable, f"the output of node {held.node_id}")
            # its log lines go with the completion's, in the order its lock order needs
            return completion.complete_in(conn, engine, held, output, earlier=[*earlier, started])
        logs.write(conn, *earlier, started)
        inst = conn.execute(
            select(InstanceRow.status, InstanceRow.priority).where(InstanceRow.id == held.instance_id)
        ).one()
        if inst.status != I.RUNNING.value:
            return Outcome()  # queued all the same: resume sends them
        definition = catalog.load_definition(engine, held.definition_id, conn)
        routing = InstanceRouting(inst.priority, held.workflow, held.definition_id)
        queued = map_items.queued_items(conn, held.instance_id, held.node_id)
        return Outcome([dispatch_for(routing, definition, row) for row in queued])


def _default_queue(executor_name: str | None) -> str:
    return executors.domain_of(executor_name) if executor_name else executors.DEFAULT_QUEUE


def _insert_items(
    conn: Any, held: Claim, body: NodeSpec, queue: str, values: list[Any], cap: int | None, now: datetime
) -> None:
    """One row per item; the first `cap` (all without it) queued for their first attempt."""
    first = len(values) if cap is None else cap
    rows = [
        {
            "instance_id": held.instance_id,
            "node_id": item_id(held.node_id, index),
            "type": body.type,
            "executor": body.executor,
            "queue": queue,
            "status": N.QUEUED.value if index < first else N.PENDING.value,
            "attempt": 1 if index < first else 0,
            "queued_at": now if index < first else None,
            "pending_deps": 0,
            "failures": 0,
            "handbacks": 0,
            "map_node_id": held.node_id,
            "item_index": index,
            "item": value,
            "updated_at": now,
        }
        for index, value in enumerate(values)
    ]
    for at in range(0, len(rows), INSERT_BATCH):
        conn.execute(_INSERT, rows[at : at + INSERT_BATCH])


def _reset_items(conn: Any, held: Claim, now: datetime) -> tuple[int, int, int]:
    """A rerun of the map: items that failed, were cancelled or skipped by a failure go back to
    pending; completed ones (and those their `when` skipped) keep their outputs. Returns the number
    of items, of those left to end, and of those queued or running already."""
    rows = map_items.item_rows(conn, held.instance_id, held.node_id)
    again = [
        r.id
        for r in rows
        if r.status in (N.FAILED.value, N.CANCELLED.value)
        or (r.status == N.SKIPPED.value and unreachable.skipped_by_failure(r.error))
    ]
    if again:
        move_nodes(
            conn,
            N.PENDING,
            NodeRow.id.in_(again),
            sources=[N.FAILED, N.CANCELLED, N.SKIPPED],
            failures=0,
            error=None,
            output=None,
            finished_at=None,
            heartbeat_at=None,
            not_before=None,
            updated_at=now,
        )
    reset = set(again)
    kept = sum(1 for r in rows if r.id not in reset and r.status in (N.COMPLETED.value, N.SKIPPED.value))
    running = sum(1 for r in rows if r.status in (N.QUEUED.value, N.RUNNING.value))
    return len(rows), len(rows) - kept, running


class MapNode:
    name = "map"
    runs_executor = False

    def rows(self) -> ColumnElement[bool]:
        return NodeRow.type == self.name

    def start(self, engine: Engine, held: Claim, spec: NodeSpec, config: dict[str, Any]) -> Outcome:
        return start(engine, held, spec)

    def lost(self, cutoff: datetime, gone: Any) -> ColumnElement[bool]:
        # no heartbeat while its items run: lost only when its claim is that old and its items were
        # never started (its worker died between the claim and the items' transaction)
        return self.rows() & (NodeRow.heartbeat_at < cutoff) & NodeRow.items_left.is_(None)

    def untouched_since(self, cutoff: datetime) -> datetime | None:
        # its worker may yet start the items (which renews the heartbeat): only a claim that old goes
        return cutoff

    def sweep_actions(self) -> tuple[Any, ...]:
        return ()


TYPE = MapNode()
