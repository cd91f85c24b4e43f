"""`wait` nodes: wait, holding no worker slot and no lease, for a signal (`orchestrator/signals.py`).

Starts: the claiming worker, in one transaction under the node row's lock, either consumes the signal
of the node's name stored before the node was reached (and completes the node with its payload), or
moves the node running -> waiting with `wake_at` = now + its `timeout` and frees its slot.
Completes: a signal sent while it waits (`signals.send`), or its timeout: the sweep completes it with
`onTimeout.output`, or fails it with TIMEOUT (so its `retries` apply: a retry waits again).
Recovered: a node still running a heartbeat timeout after its claim (its worker died between the
claim and the move to waiting) is handed back. A waiting node needs no recovery: it is all in its row.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, select

from orchestrator import catalog, completion, due_rows, logs, signals
from orchestrator.db import retrying
from orchestrator.definitions import NodeSpec
from orchestrator.errors import LostClaim
from orchestrator.models import InstanceRow, NodeRow, utcnow
from orchestrator.outcomes import Claim, Outcome
from orchestrator.states import NodeStatus as N
from orchestrator.transitions import move_node

BATCH = 500


@retrying()
def start(engine: Engine, held: Claim, spec: NodeSpec) -> Outcome:
    """Consume the node's stored signal and complete, or start waiting. Raises LostClaim."""
    name = str(spec.signal)
    now = utcnow()
    with engine.begin() as conn:
        node = conn.execute(
            signals.NODE_LOCKED, {"instance_id": held.instance_id, "node_id": held.node_id}
        ).one()
        if node.status != N.RUNNING.value or node.attempt != held.attempt:
            raise LostClaim(f"node {held.node_id} attempt {held.attempt} no longer holds its claim")
        signal = signals.stored(conn, held.instance_id, name)
        if signal is not None:
            received = signals.received(held, name, True)
            outcome = completion.complete_in(conn, engine, held, signal.payload, earlier=[received])
            signals.mark_consumed(conn, signal.id, held.node_id, held.attempt, now)
            return outcome
        wake_at = None if spec.timeout_ms is None else now + timedelta(milliseconds=spec.timeout_ms)
        move_node(
            conn,
            held.row_id,
            N.WAITING,
            sources=[N.RUNNING],
            fence=held.attempt,
            wake_at=wake_at,
            heartbeat_at=None,
        )
        until = "" if wake_at is None else f" until {wake_at.isoformat()}Z"
        logs.write(
            conn,
            logs.LogEntry(
                held.instance_id,
                f"node waiting for signal {name}{until}",
                node_id=held.node_id,
                worker_id=held.worker_id,
                attempt=held.attempt,
                details={"status": N.WAITING.value, "signal": name},
            ),
        )
    return Outcome()


_TIMED_OUT = (
    select(
        NodeRow.id,
        NodeRow.instance_id,
        NodeRow.node_id,
        NodeRow.attempt,
        NodeRow.worker_id,
        InstanceRow.definition_id,
        InstanceRow.workflow_name,
        InstanceRow.priority,
    )
    .join(InstanceRow, InstanceRow.id == NodeRow.instance_id)
    .where(NodeRow.status == N.WAITING.value, NodeRow.type == "wait")
    .order_by(NodeRow.wake_at)
    .limit(BATCH)
)


def time_out(engine: Engine, _older_than: float) -> list[Outcome]:
    """Waiting wait nodes past their `wake_at`: completed with `onTimeout.output`, else failed with
    TIMEOUT (retried per the node's `retries`). Each is fenced on the node's attempt and status, so
    two sweeps (or a signal at the same moment) end it once."""

    def due() -> list[Any]:
        with engine.connect() as conn:
            return list(conn.execute(_TIMED_OUT.where(NodeRow.wake_at <= utcnow())).all())

    act = lambda row: _time_out_one(engine, row)  # noqa: E731
    return due_rows.drain(due, act, lambda row: row.id, BATCH, "wait node row")


def _time_out_one(engine: Engine, row: Any) -> Outcome | None:
    held = Claim(
        row_id=row.id,
        instance_id=row.instance_id,
        node_id=row.node_id,
        attempt=row.attempt,
        worker_id=row.worker_id or "",
        definition_id=row.definition_id,
        workflow=row.workflow_name,
        last_checkpoint=None,
        outputs={},
        priority=row.priority,
    )
    spec = catalog.load_definition(engine, row.definition_id).node(row.node_id)
    try:
        if spec.on_timeout is not None:
            return completion.complete(engine, held, spec.on_timeout.get("output"), source=N.WAITING)
        error = {"code": "TIMEOUT", "message": f"no signal {spec.signal} within {spec.timeout_ms} ms"}
        return completion.fail(engine, held, error, source=N.WAITING)
    except LostClaim:
        return None  # a signal, a cancel or another sweep ended it first


class WaitNode:
    name = "wait"
    runs_executor = False

    def rows(self) -> ColumnElement[bool]:
        return NodeRow.type == self.name

    def start(self, engine: Engine, held: Claim, spec: NodeSpec, config: dict[str, Any]) -> Outcome:
        return start(engine, held, spec)

    def lost(self, cutoff: datetime, gone: Any) -> ColumnElement[bool]:
        # running only between the claim and the move to waiting, which frees the slot at once
        return self.rows() & (NodeRow.heartbeat_at < cutoff)

    def untouched_since(self, cutoff: datetime) -> datetime | None:
        return cutoff

    def sweep_actions(self) -> tuple[Any, ...]:
        return (time_out,)


TYPE = WaitNode()
