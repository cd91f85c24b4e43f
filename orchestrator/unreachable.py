"""Nodes that can no longer run once a node of their instance has failed for good.

A node that fails for good (no retry left) ends its instance `failed` at once (`completion.fail`;
`recovery.hand_back` for a node that lost its worker too often). Nothing of a failed instance is
claimed any more, so every node still `pending` or `queued` can no longer run: in the transaction
that ends the instance, each moves to `skipped` with its reason in `error`, so the status, the
progress and the DAG page tell the truth instead of showing nodes waiting for ever.

The reason tells these apart from a node skipped by its own `when` (which has no error):

- `UPSTREAM_FAILED` (reason "upstream failed"): the failed node is upstream of it (a join with one
  failed dependency among them), so it could never have run.
- `INSTANCE_FAILED` (reason "instance failed"): a node of another branch, not reached before the
  instance failed.

A retry of the instance (`lifecycle.retry`) resets both kinds to pending; a node skipped by its
`when` keeps its decision.

A node still running when its instance fails is not touched here: it finishes on its own (a failure
of it is final), or, if its executor stops because it was asked to (`should_stop` turns true once the
instance no longer runs), it is handed back `queued` and waits there, unsent, for a retry of the
instance to send it, as a paused instance's node waits for its resume.

A running map node is the exception: it ends only through its items, and those not started are
skipped here, so it would stay `running` for ever (and a retry, which resets ended nodes, would never
run it again). It is skipped too (`INSTANCE_FAILED`, its `items_left` cleared: no run of its items
counts any more); its items still running end on their own, counting nothing. Its row is updated
after the instance row is locked, against the order of an item's end (the map row, then the
instance row): such a pair deadlocks, InnoDB picks one, and `retrying` runs it again.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from orchestrator import catalog, dag, logs, scheduling, slot_holders
from orchestrator.definitions import WorkflowDefinition
from orchestrator.models import NodeRow
from orchestrator.outcomes import Finished
from orchestrator.states import InstanceStatus as I
from orchestrator.states import NodeStatus as N
from orchestrator.transitions import move_node, move_nodes

UPSTREAM_FAILED = "UPSTREAM_FAILED"
INSTANCE_FAILED = "INSTANCE_FAILED"
_REASONS = {UPSTREAM_FAILED: "upstream failed", INSTANCE_FAILED: "instance failed"}
# the nodes a failure leaves behind: a claim needs a running instance, so none of these will start,
# and a waiting node of an ended instance can no longer be signalled
_OPEN = (N.PENDING, N.QUEUED, N.WAITING)


def skipped_by_failure(error: Any) -> bool:
    """Whether a skipped node's `error` says a failure elsewhere skipped it (not its own `when`)."""
    return isinstance(error, dict) and error.get("code") in _REASONS


def skip_reason(status: str, error: Any) -> str | None:
    """Why a node was skipped: "upstream failed", "instance failed", or "condition false" (its
    `when`); None for a node that was not skipped."""
    if status != N.SKIPPED.value:
        return None
    return _REASONS[error["code"]] if skipped_by_failure(error) else "condition false"


def fail_instance(
    conn: Connection,
    engine: Engine,
    instance_id: str,
    failed_node: str,
    failure: dict[str, Any],
    now: datetime,
) -> Finished | None:
    """End the instance `failed` with `failure` because `failed_node` failed for good, and skip
    every node that can no longer run; None (and nothing skipped) if the instance had already
    ended. Locks the instance row before the node rows and the log rows (see `completion.py`)."""
    inst = scheduling.instance_row(conn, instance_id, lock=True)
    entries: list[logs.LogEntry] = []
    finished = scheduling.end_instance(conn, instance_id, inst, I.FAILED, failure, entries)
    if finished is not None:
        definition = catalog.load_definition(engine, inst.definition_id, conn)
        # its queued nodes admitted under a limit give their slots back (running ones end on their own)
        freed = slot_holders.freed(
            conn, engine, instance_id, inst.definition_id, NodeRow.status == N.QUEUED.value
        )
        entries[:0] = skip_unreachable(conn, definition, instance_id, failed_node, now)
        finished = replace(finished, freed=freed) if freed else finished
    logs.write(conn, *entries)
    return finished


def skip_unreachable(
    conn: Connection,
    definition: WorkflowDefinition,
    instance_id: str,
    failed_node: str,
    now: datetime,
) -> list[logs.LogEntry]:
    """Skip every pending or queued node of an instance that `failed_node` has just failed, with its
    reason; returns their log lines (in node order; a map's items in one line) for the caller to write.

    Call it in the transaction that moves the instance to `failed`, after the instance row is locked.
    The open nodes are read without a lock and moved by id, each UPDATE guarded on the open states:
    a locking read would also wait on the rows of running nodes, which a finishing transaction holds
    while it waits for the instance row (a lock cycle). A queued node claimed in between is left
    running (it ends on its own) and gets no line."""
    map_lines = end_running_maps(conn, instance_id, failed_node, now) + _skip_items(
        conn, definition, instance_id, failed_node, now
    )
    rows = conn.execute(
        select(NodeRow.id, NodeRow.node_id)
        .where(
            NodeRow.instance_id == instance_id,
            NodeRow.status.in_([s.value for s in _OPEN]),
            NodeRow.map_node_id.is_(None),
        )
        .order_by(NodeRow.id)
    ).all()
    if not rows:
        return map_lines
    below = dag.downstream(definition.dependencies, failed_node)
    code_of = {row.node_id: UPSTREAM_FAILED if row.node_id in below else INSTANCE_FAILED for row in rows}
    moved = 0
    for code in _REASONS:
        ids = [row.id for row in rows if code_of[row.node_id] == code]
        if ids:
            moved += move_nodes(
                conn,
                N.SKIPPED,
                NodeRow.id.in_(ids),
                sources=_OPEN,
                error=_error(code, failed_node),
                finished_at=now,
                heartbeat_at=None,
                not_before=None,
                updated_at=now,
            )
    if moved != len(rows):  # some moved on meanwhile: read back which ones this call skipped
        skipped = set(
            conn.execute(
                select(NodeRow.id).where(
                    NodeRow.id.in_([row.id for row in rows]), NodeRow.status == N.SKIPPED.value
                )
            ).scalars()
        )
        rows = [row for row in rows if row.id in skipped]
    return map_lines + [
        logs.LogEntry(
            instance_id,
            f"node skipped: {_REASONS[code_of[row.node_id]]} (node {failed_node} failed)",
            level="warning",
            node_id=row.node_id,
            details={"status": N.SKIPPED.value, **_error(code_of[row.node_id], failed_node)},
            at=now,
        )
        for row in rows
    ]


def _skip_items(
    conn: Connection, definition: WorkflowDefinition, instance_id: str, failed_node: str, now: datetime
) -> list[logs.LogEntry]:
    """Skip the open items of each map of the instance: one UPDATE and one log line per map, not per
    item (a map has up to 10,000). An item is never downstream of the failed node: `INSTANCE_FAILED`."""
    error = _error(INSTANCE_FAILED, failed_node)
    entries = []
    for map_id in (node.id for node in definition.nodes if node.type == "map"):
        moved = move_nodes(
            conn,
            N.SKIPPED,
            NodeRow.instance_id == instance_id,
            NodeRow.map_node_id == map_id,
            sources=_OPEN,
            error=error,
            finished_at=now,
            heartbeat_at=None,
            not_before=None,
            updated_at=now,
        )
        if moved:
            entries.append(
                logs.LogEntry(
                    instance_id,
                    f"{moved} items skipped: {_REASONS[INSTANCE_FAILED]} (node {failed_node} failed)",
                    level="warning",
                    node_id=map_id,
                    details={"status": N.SKIPPED.value, "items": moved, **error},
                    at=now,
                )
            )
    return entries


def end_running_maps(
    conn: Connection, instance_id: str, failed_node: str, now: datetime
) -> list[logs.LogEntry]:
    """Skip the map nodes still running in an instance that has failed (module doc), each fenced on
    the attempt read; returns their log lines."""
    maps = conn.execute(
        select(NodeRow.id, NodeRow.node_id, NodeRow.attempt).where(
            NodeRow.instance_id == instance_id,
            NodeRow.type == "map",
            NodeRow.status == N.RUNNING.value,
        )
    ).all()
    error = _error(INSTANCE_FAILED, failed_node)
    return [
        logs.LogEntry(
            instance_id,
            f"node skipped: {_REASONS[INSTANCE_FAILED]} (node {failed_node} failed)",
            level="warning",
            node_id=row.node_id,
            attempt=row.attempt,
            details={"status": N.SKIPPED.value, **error},
            at=now,
        )
        for row in maps
        if move_node(
            conn,
            row.id,
            N.SKIPPED,
            sources=[N.RUNNING],
            fence=row.attempt,
            error=error,
            items_left=None,
            finished_at=now,
            heartbeat_at=None,
            updated_at=now,
        )
    ]


def _error(code: str, failed_node: str) -> dict[str, Any]:
    reason = _REASONS[code]
    message = f"{reason}: node {failed_node} failed"
    return {"code": code, "reason": reason, "failedNode": failed_node, "message": message}
