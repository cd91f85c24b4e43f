"""`sleep` nodes: a durable timer that holds no worker slot.

Starts: the worker that claimed the attempt works out the wake-up time (now + `duration`, or `until`
rendered) and, in one transaction fenced on the attempt, moves the node running -> waiting with
`wake_at` and no lease (its slot is free at once); a time already past completes the node at once.
Completes: the recovery sweep (every ORCH_RECOVERY_INTERVAL, under beat) fires the waiting sleeps
whose `wake_at` has come, waiting -> completed through `completion.complete` (from `waiting`), a
compare-and-set: of two sweeps (two beats) one fires it, and its successors are released once. A
short sleep is also fired by a `wake` message sent with a countdown (`wake_soon`), which only makes
it prompt: the message takes the same guarded path, and the sweep remains the guarantee.

The timer is a row: it survives the death of every worker and beat, and a restart of the whole
system. It may fire late (by up to a sweep interval, or as long as nothing ran), never twice.
Output: `{"sleptUntil": "<the wake-up time, ISO 8601 UTC>"}`.

Recovered: a claimed sleep whose worker died before the hand-off (still running, claimed a heartbeat
timeout ago) is handed back.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, bindparam, select

from orchestrator import completion, due_rows, logs, scheduling, templates
from orchestrator.db import retrying
from orchestrator.definitions import NodeSpec, parse_instant
from orchestrator.errors import LostClaim, TemplateError
from orchestrator.models import InstanceRow, NodeRow, utcnow
from orchestrator.outcomes import Claim, Outcome, Wakeup
from orchestrator.states import NodeStatus as N
from orchestrator.transitions import move_node

BATCH = 500
# a sleep this short (s) is also woken by a message with a countdown: the sweep alone could fire it a
# whole interval late. Longer ones are left to the sweep: a worker holds such a message unacknowledged
# until its time, and should not hold many, nor any for as long as RabbitMQ's consumer timeout.
PROMPT_WAKE_UP_TO = 300.0


def output(wake_at: datetime) -> dict[str, Any]:
    return {"sleptUntil": wake_at.isoformat() + "Z"}


def wake_time(engine: Engine, held: Claim, spec: NodeSpec, now: datetime) -> datetime:
    """When the attempt wakes: now + `duration`, or `until` rendered. Raises TemplateError (the node
    fails, not retried) for an `until` that does not render to an ISO 8601 date and time."""
    if spec.duration_ms is not None:
        return now + timedelta(milliseconds=spec.duration_ms)
    rendered = templates.render(spec.until, _scope(engine, held, spec))
    instant = parse_instant(rendered)
    if instant is None:
        shown = repr(rendered)[:100]
        raise TemplateError(f"until of node {held.node_id} is {shown}, not an ISO 8601 date and time")
    return instant


def _scope(engine: Engine, held: Claim, spec: NodeSpec) -> dict[str, Any]:
    scope: dict[str, Any] = {"nodes": {node: {"output": out} for node, out in held.outputs.items()}}
    if spec.reads_instance:
        data, external_id = scheduling.instance_data(engine, held.instance_id)
        scope["input"] = data
        scope["instance"] = {"id": held.instance_id, "externalId": external_id}
    return scope


def fall_asleep(engine: Engine, held: Claim, spec: NodeSpec) -> Outcome:
    """Start the claimed attempt's timer (running -> waiting), or complete it if its time has come.
    Raises LostClaim when the attempt no longer holds the node."""
    now = utcnow()
    wake_at = wake_time(engine, held, spec, now)
    if wake_at <= now:
        return completion.complete(engine, held, output(wake_at))
    _go_to_sleep(engine, held, wake_at)
    delay = (wake_at - now).total_seconds()
    if delay > PROMPT_WAKE_UP_TO:
        return Outcome()
    return Outcome(wakeups=[Wakeup(held.instance_id, held.node_id, held.attempt, delay)])


@retrying()  # a deadlock or a dropped connection here must not fail the node (and its instance)
def _go_to_sleep(engine: Engine, held: Claim, wake_at: datetime) -> None:
    with engine.begin() as conn:
        if not move_node(
            conn,
            held.row_id,
            N.WAITING,
            sources=[N.RUNNING],
            fence=held.attempt,
            wake_at=wake_at,
            heartbeat_at=None,
        ):
            raise LostClaim(f"node {held.node_id} attempt {held.attempt} no longer holds its claim")
        until = wake_at.isoformat() + "Z"
        logs.write(
            conn,
            logs.LogEntry(
                held.instance_id,
                f"node sleeping until {until}",
                node_id=held.node_id,
                worker_id=held.worker_id,
                attempt=held.attempt,
                details={"status": N.WAITING.value, "until": until},
            ),
        )


_ASLEEP = (
    select(
        NodeRow.id,
        NodeRow.instance_id,
        NodeRow.node_id,
        NodeRow.attempt,
        NodeRow.wake_at,
        InstanceRow.definition_id,
        InstanceRow.workflow_name,
        InstanceRow.priority,
    )
    .join(InstanceRow, InstanceRow.id == NodeRow.instance_id)
    .where(NodeRow.status == N.WAITING.value, NodeRow.type == "sleep")
)
_DUE = _ASLEEP.where(NodeRow.wake_at <= bindparam("now")).order_by(NodeRow.wake_at).limit(BATCH)
_ONE = _ASLEEP.where(
    NodeRow.instance_id == bindparam("instance_id"),
    NodeRow.node_id == bindparam("node_id"),
    NodeRow.attempt == bindparam("attempt"),
    NodeRow.wake_at <= bindparam("now"),
)


def _fire(engine: Engine, row: Any) -> Outcome | None:
    held = Claim(
        row_id=row.id,
        instance_id=row.instance_id,
        node_id=row.node_id,
        attempt=row.attempt,
        worker_id="sleep",
        definition_id=row.definition_id,
        workflow=row.workflow_name,
        last_checkpoint=None,
        outputs={},
        priority=row.priority,
    )
    try:
        return completion.complete(engine, held, output(row.wake_at), source=N.WAITING)
    except LostClaim:  # fired by another sweep or message, or cancelled meanwhile
        return None


@retrying()
def _due(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(_DUE, {"now": utcnow()}).all())


def fire_due(engine: Engine, _older_than: float = 0.0) -> list[Outcome]:
    """Complete every waiting sleep whose time has come (`due_rows.drain`); what to send."""
    return due_rows.drain(
        lambda: _due(engine), lambda row: _fire(engine, row), lambda row: row.id, BATCH, "sleep node row"
    )


def wake(engine: Engine, instance_id: str, node_id: str, attempt: int) -> Outcome:
    """Fire one sleep if `attempt` still sleeps and its time has come (a `wake` message; a copy, an
    early or a stale one changes nothing)."""
    params = {"instance_id": instance_id, "node_id": node_id, "attempt": attempt, "now": utcnow()}
    with engine.connect() as conn:
        row = conn.execute(_ONE, params).first()
    return (None if row is None else _fire(engine, row)) or Outcome()


class SleepNode:
    name = "sleep"
    runs_executor = False

    def rows(self) -> ColumnElement[bool]:
        return NodeRow.type == self.name

    def start(self, engine: Engine, held: Claim, spec: NodeSpec, config: dict[str, Any]) -> Outcome:
        return fall_asleep(engine, held, spec)

    def lost(self, cutoff: datetime, gone: Any) -> ColumnElement[bool]:
        # still running: claimed, and its worker died before the hand-off to the timer
        return self.rows() & (NodeRow.heartbeat_at < cutoff)

    def untouched_since(self, cutoff: datetime) -> datetime | None:
        return cutoff

    def sweep_actions(self) -> tuple[Any, ...]:
        return (fire_due,)


TYPE = SleepNode()
