"""Pause, resume, cancel and retry: requested over HTTP, each one guarded transaction.

Each returns an Outcome for the caller to act on after the commit (nodes to send, an ended instance
to notify). Illegal requests raise InvalidTransition (HTTP 409); unknown instances raise NotFound.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from orchestrator import callbacks, catalog, dag, logs, map_items, scheduling, slot_holders, unreachable
from orchestrator.db import retrying
from orchestrator.errors import InvalidTransition, NotFound, Problem, ValidationError
from orchestrator.models import InstanceRow, NodeRow, utcnow
from orchestrator.outcomes import Outcome
from orchestrator.states import DONE_NODE, InstanceStatus, NodeStatus, can_move_instance
from orchestrator.transitions import move_nodes, require_instance_move

I = InstanceStatus
N = NodeStatus


def _current(conn: Connection, instance_id: str, *, lock: bool = False) -> Any:
    """The instance's status and what the actions need; with `lock`, its row locked for the rest of
    the transaction, so the status read is the one the transaction moves from (a start committing in
    between waits, rather than turning a cancel into a conflict)."""
    statement = select(
        InstanceRow.status, InstanceRow.definition_id, InstanceRow.timeout_ms, InstanceRow.error
    ).where(InstanceRow.id == instance_id)
    row = conn.execute(statement.with_for_update() if lock else statement).first()
    if row is None:
        raise NotFound(f"no instance {instance_id!r}")
    return row


def _note(conn: Connection, instance_id: str, action: str, status: I) -> None:
    logs.write(
        conn, logs.LogEntry(instance_id, f"instance {action}: now {status}", details={"status": status.value})
    )


@retrying()
def pause(engine: Engine, instance_id: str) -> Outcome:
    """running -> paused: nothing new is enqueued; running nodes see `should_stop` at their next beat.
    Its nodes admitted under a limit and not yet claimed give their slots back (`slot_holders`): they
    go through admission again on resume."""
    with engine.begin() as conn:
        current = _current(conn, instance_id, lock=True)
        require_instance_move(conn, instance_id, I(current.status), I.PAUSED)
        freed = slot_holders.hand_back_admitted(conn, engine, instance_id, current.definition_id)
        _note(conn, instance_id, "paused", I.PAUSED)
    return Outcome(freed=freed)


def resume(engine: Engine, instance_id: str) -> Outcome:
    """paused -> running, then send every queued node and release every ready one."""
    _resume(engine, instance_id)
    return scheduling.start(engine, instance_id)


@retrying()
def _resume(engine: Engine, instance_id: str) -> None:
    with engine.begin() as conn:
        current = I(_current(conn, instance_id).status)
        if current is not I.PAUSED:  # pending -> running is `start`, not a resume
            raise InvalidTransition(f"only a paused instance can be resumed; this one is {current}")
        require_instance_move(conn, instance_id, current, I.RUNNING)
        _note(conn, instance_id, "resumed", I.RUNNING)


def start(engine: Engine, instance_id: str) -> Outcome:
    """Start an instance created with `start: false` or a startAt to come (pending -> running)."""
    with engine.connect() as conn:
        current = I(_current(conn, instance_id).status)
    if current is not I.PENDING:
        raise InvalidTransition(f"only a pending instance can be started; this one is {current}")
    return scheduling.start(engine, instance_id, early=True)  # also one whose startAt is to come


@retrying()
def cancel(engine: Engine, instance_id: str, reason: str = "cancelled on request") -> Outcome:
    """End the instance `cancelled`: pending and queued nodes are cancelled at once (their messages
    are dropped at claim), running ones are fenced off and see `should_stop` at their next beat.
    Raises NotFound, and InvalidTransition for an instance that has ended (or ended meanwhile)."""
    with engine.begin() as conn:
        row = _current(conn, instance_id, lock=True)
        current = I(row.status)
        if not can_move_instance(current, I.CANCELLED):
            raise InvalidTransition(f"an instance cannot go from {current} to {I.CANCELLED}")
        error = {"code": "CANCELLED", "message": reason}
        finished = scheduling.finish_instance(conn, instance_id, I.CANCELLED, error, sources=[current])
        if finished is None:
            raise InvalidTransition(f"instance {instance_id} changed state concurrently; try again")
        # a running attempt under a limit keeps its slot until it stops (`slot_holders`)
        freed = slot_holders.cancel_open(conn, engine, instance_id, row.definition_id)
    return Outcome(finished=replace(finished, freed=freed) if freed else finished)


def cancel_open_nodes(conn: Connection, instance_id: str) -> int:
    return move_nodes(
        conn,
        N.CANCELLED,
        NodeRow.instance_id == instance_id,
        sources=[N.PENDING, N.QUEUED, N.RUNNING, N.WAITING],
        finished_at=utcnow(),
        heartbeat_at=None,
    )


@retrying()
def _reset_for_retry(engine: Engine, instance_id: str, from_node: str | None, all_items: bool) -> None:
    now = utcnow()
    with engine.begin() as conn:
        current = _current(conn, instance_id)
        require_instance_move(conn, instance_id, I(current.status), I.PENDING)
        definition = catalog.load_definition(engine, current.definition_id, conn)
        # a map the failure left running (its instance failed before failures ended their maps) ends
        # first, so that the reset below runs it again
        failed_node = str((current.error or {}).get("nodeId"))
        logs.write(conn, *unreachable.end_running_maps(conn, instance_id, failed_node, now))
        # failed and cancelled nodes, and those a failure skipped; a node its own `when` skipped
        # keeps that decision (unless `from_node` reaches it)
        reset = {
            n.node_id
            for n in conn.execute(
                select(NodeRow.node_id, NodeRow.status, NodeRow.error).where(
                    NodeRow.instance_id == instance_id,
                    NodeRow.status.in_([N.FAILED.value, N.CANCELLED.value, N.SKIPPED.value]),
                    NodeRow.map_node_id.is_(None),  # a map's items: its next run decides (nodes/map.py)
                )
            )
            if n.status != N.SKIPPED.value or unreachable.skipped_by_failure(n.error)
        }
        if from_node is not None:
            if from_node not in definition.dependencies:
                raise ValidationError(
                    "unknown node", [Problem("fromNode", f"no node {from_node!r}", "VALIDATION_ERROR")]
                )
            reset |= {from_node} | dag.downstream(definition.dependencies, from_node)
        # a map reset keeps its items, and its next run reruns those that did not complete; with
        # `all`, or reached from upstream (its list may change), it starts over from `over`
        maps = sorted(node for node in reset if definition.node(node).type == "map")
        below = set() if from_node is None else dag.downstream(definition.dependencies, from_node)
        map_items.drop_items(conn, instance_id, [m for m in maps if all_items or m in below])
        move_nodes(
            conn,
            N.PENDING,
            NodeRow.instance_id == instance_id,
            NodeRow.node_id.in_(sorted(reset)),
            failures=0,
            error=None,
            finished_at=None,
            heartbeat_at=None,
            output=None,
            items_left=None,
        )
        statuses = dict(
            conn.execute(
                select(NodeRow.node_id, NodeRow.status).where(NodeRow.instance_id == instance_id)
            ).all()
        )
        done = {node for node, status in statuses.items() if status in DONE_NODE}
        for node in sorted(reset):
            waiting = sum(1 for dep in definition.dependencies[node] if dep not in done)
            conn.execute(
                update(NodeRow)
                .where(NodeRow.instance_id == instance_id, NodeRow.node_id == node)
                .values(pending_deps=waiting)
            )
        deadline = None if current.timeout_ms is None else now + timedelta(milliseconds=current.timeout_ms)
        conn.execute(
            update(InstanceRow)
            .where(InstanceRow.id == instance_id)
            .values(
                unfinished_sinks=len(definition.sinks - done),
                error=None,
                finished_at=None,
                deadline_at=deadline,
                start_requested_at=now,  # the sweep starts it should the process die before `start`
                # a delivery not yet made of the end being retried is dropped; the next end has its own
                **callbacks.CLEARED,
            )
        )
        _note(conn, instance_id, f"retried (nodes reset: {', '.join(sorted(reset)) or 'none'})", I.PENDING)


def retry(engine: Engine, instance_id: str, from_node: str | None = None, all_items: bool = False) -> Outcome:
    """Run a failed instance again: its failed nodes, the nodes the failure skipped (and with
    `from_node`, that node and everything downstream of it) start over; completed nodes keep their
    outputs, and a node skipped by its own `when` stays skipped. A map node that starts over reruns
    only its items that did not complete, unless `all_items` (or it is downstream of `from_node`)."""
    _reset_for_retry(engine, instance_id, from_node, all_items)
    return scheduling.start(engine, instance_id, early=True)
