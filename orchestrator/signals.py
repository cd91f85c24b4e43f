"""Signals: `POST /api/v1/instances/<id>/signals/<name>` completes the `wait` node waiting for `name`.

A signal and the node it names meet under one lock, the node row's, which both sides take first: the
signal (`send`) and the node's start (`nodes/wait.py`, `consume_stored`). So of the two, the one that
commits first is seen by the other: a signal sent while the node waits completes it at once; one sent
before the node is reached is stored, and the node finds it when it starts (Temporal's semantics).
Neither can miss the other, and a signal is taken by one node attempt at most.

Lock order (as in `completion`): the node row, the completion's rows (for a sink, the instance row),
and only then the signal row. Inserting a signal row takes a shared lock on its instance row (the
foreign key), which must not come before a sink's completion writes that row.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from orchestrator import catalog, completion, logs, storable
from orchestrator.db import retrying
from orchestrator.errors import Conflict, NotFound, NotStorable, Problem, ValidationError
from orchestrator.models import InstanceRow, NodeRow, SignalRow, utcnow
from orchestrator.outcomes import Claim, Outcome
from orchestrator.states import FINISHED_INSTANCE
from orchestrator.states import NodeStatus as N

# the statuses of a wait node that has not been reached yet: a signal for it is stored
NOT_REACHED = frozenset({N.PENDING.value, N.QUEUED.value, N.RUNNING.value})


class InstanceFinished(Conflict):
    code = "INSTANCE_FINISHED"


class SignalAlreadyStored(Conflict):
    code = "SIGNAL_ALREADY_STORED"


class NodeDone(Conflict):
    code = "NODE_DONE"


@dataclass(frozen=True)
class Delivery:
    """What a signal did: completed its node (`delivered`) or was stored until the node is reached;
    `outcome` is what the completion released, to act on after the commit."""

    instance_id: str
    signal: str
    node_id: str
    delivered: bool
    outcome: Outcome


# the wait node's row, locked: the lock a signal and the node's start both take first
NODE_LOCKED = (
    select(NodeRow.id, NodeRow.status, NodeRow.attempt, NodeRow.worker_id)
    .where(NodeRow.instance_id == bindparam("instance_id"), NodeRow.node_id == bindparam("node_id"))
    .with_for_update()
)
_STORED = (
    select(SignalRow.id, SignalRow.payload)
    .where(
        SignalRow.instance_id == bindparam("instance_id"),
        SignalRow.name == bindparam("name"),
        SignalRow.consumed_at.is_(None),
    )
    .order_by(SignalRow.id)
    .limit(1)
    .with_for_update()
)
_INSTANCE = select(
    InstanceRow.status, InstanceRow.definition_id, InstanceRow.workflow_name, InstanceRow.priority
).where(InstanceRow.id == bindparam("instance_id"))


def stored(conn: Connection, instance_id: str, name: str) -> Any:
    """The signal `name` stored for the instance and not yet consumed (id, payload), locked; or None."""
    return conn.execute(_STORED, {"instance_id": instance_id, "name": name}).first()


def mark_consumed(conn: Connection, signal_id: int, node_id: str, attempt: int, now: datetime) -> None:
    conn.execute(
        update(SignalRow)
        .where(SignalRow.id == signal_id)
        .values(consumed_at=now, node_id=node_id, attempt=attempt)
    )


def received(held: Claim, name: str, stored_before: bool) -> logs.LogEntry:
    how = "stored before the node was reached" if stored_before else "sent while the node waited"
    return logs.LogEntry(
        held.instance_id,
        f"signal {name} received ({how})",
        node_id=held.node_id,
        attempt=held.attempt,
        details={"signal": name},
    )


@retrying()
@contextmanager
def _refused_body(name: str) -> Iterator[None]:
    """A body the store cannot hold is the request's fault: a 422 naming it."""
    try:
        with storable.refusals(NotStorable, f"signal {name}"):
            yield
    except NotStorable as exc:
        raise ValidationError(exc.message, [Problem("body", exc.message, "VALIDATION_ERROR")]) from None


def send(engine: Engine, instance_id: str, name: str, payload: Any) -> Delivery:
    """Deliver the signal `name` with `payload` (any JSON value) to the instance's wait node.

    Raises NotFound (no such instance; no wait node of it waits for `name`), Conflict (the instance
    has ended, the node is done, or a signal `name` is already stored and not consumed) and
    ValidationError (a payload the store cannot hold)."""
    with _refused_body(name):
        storable.check(engine, payload, NotStorable, f"signal {name}")
    now = utcnow()
    # a body the check lets through can still be refused by the store's JSON (MySQL: a number past
    # a double's range), stored or delivered alike
    with _refused_body(name), engine.begin() as conn:
        inst = conn.execute(_INSTANCE, {"instance_id": instance_id}).first()
        if inst is None:
            raise NotFound(f"no instance {instance_id!r}")
        definition = catalog.load_definition(engine, inst.definition_id, conn)
        node_id = next((n.id for n in definition.nodes if n.type == "wait" and n.signal == name), None)
        if node_id is None:
            problem = Problem("name", f"no wait node of this instance waits for signal {name!r}", "NOT_FOUND")
            raise NotFound(f"no wait node of instance {instance_id} waits for signal {name!r}", [problem])
        if inst.status in FINISHED_INSTANCE:
            raise InstanceFinished(f"instance {instance_id} is {inst.status}: it takes no signal")
        node = conn.execute(NODE_LOCKED, {"instance_id": instance_id, "node_id": node_id}).one()
        if node.status in NOT_REACHED:
            if stored(conn, instance_id, name) is not None:
                raise SignalAlreadyStored(
                    f"a signal {name!r} is already stored for node {node_id}, waiting for it to be reached"
                )
            conn.execute(insert(SignalRow).values(instance_id=instance_id, name=name, payload=payload))
            logs.write(
                conn,
                logs.LogEntry(
                    instance_id,
                    f"signal {name} stored until node {node_id} is reached",
                    node_id=node_id,
                    details={"signal": name},
                ),
            )
            return Delivery(instance_id, name, node_id, False, Outcome())
        if node.status != N.WAITING.value:
            raise NodeDone(f"node {node_id} is {node.status}: it takes no more signals")
        held = Claim(
            row_id=node.id,
            instance_id=instance_id,
            node_id=node_id,
            attempt=node.attempt,
            worker_id=node.worker_id or "",
            definition_id=inst.definition_id,
            workflow=inst.workflow_name,
            last_checkpoint=None,
            outputs={},
            priority=inst.priority,
        )
        outcome = completion.complete_in(
            conn, engine, held, payload, source=N.WAITING, earlier=[received(held, name, False)]
        )
        # after the completion's rows (module doc): the foreign key's shared lock on the instance
        conn.execute(
            insert(SignalRow).values(
                instance_id=instance_id,
                name=name,
                payload=payload,
                consumed_at=now,
                node_id=node_id,
                attempt=node.attempt,
            )
        )
        return Delivery(instance_id, name, node_id, True, outcome)
