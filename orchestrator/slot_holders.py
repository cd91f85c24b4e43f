"""Which concurrency limits a transaction frees: read, in the transaction that moves them, the gates
of the rows it is about to take out of a limit's slot count, so that the caller can run the release
pass (`admission.release`) right after its commit instead of leaving the next waiting node to the
recovery sweep.

Every path that frees a slot reports it in its `Outcome` (`freed`, or `Finished.freed` for an
instance's end), and `workers/tasks.py: follow_up` runs the pass. A workflow without limits costs
nothing: `may_hold` answers from memory (the executor registry and the cached definition), and no
row is read unless it may hold a slot.

A cancel does not free the slot of a running attempt at once: its executor may still be calling
the limited resource until it sees `should_stop`. The row is `cancelled` with its heartbeat kept
(`limit_rows.HOLDING` counts such a row) until the attempt ends (`let_go`, by its worker) or the
heartbeat is older than the heartbeat timeout (`expire_cancelled`, a sweep step).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select, update

from orchestrator import catalog, limits, rate_horizon
from orchestrator.db import retrying
from orchestrator.definitions import WorkflowDefinition
from orchestrator.limit_rows import ADMITTED, HOLDING, KEPT_BY_CANCEL, NOT_ADMITTED
from orchestrator.limits import CONCURRENCY, Gate
from orchestrator.models import InstanceRow, NodeRow, utcnow
from orchestrator.states import NodeStatus as N
from orchestrator.transitions import move_nodes


def may_hold(definition: WorkflowDefinition) -> bool:
    """Whether any node of this definition can be under a limit (no query)."""
    return limits.any_declared() or any(
        node.limits is not None or (node.item is not None and node.item.limits is not None)
        for node in definition.nodes
    )


def of_node(
    definition: WorkflowDefinition, workflow: str, node_id: str, executor: str | None
) -> tuple[Gate, ...]:
    """The concurrency limits of one node (no query)."""
    gates = limits.node_gates(workflow, node_id, executor, _own(definition, node_id))
    return tuple(g for g in gates if g.kind == CONCURRENCY)


def _own(definition: WorkflowDefinition, node_id: str) -> limits.Declared | None:
    try:
        return definition.node(node_id).limits
    except KeyError:  # a node of a newer definition: only its executor's limits
        return None


def merge(*groups: Iterable[Gate]) -> tuple[Gate, ...]:
    found: dict[str, Gate] = {}
    for group in groups:
        for gate in group:
            found.setdefault(gate.name, gate)
    return tuple(found[name] for name in sorted(found))


def freed(
    conn: Connection, engine: Engine, instance_id: str, definition_id: int, *where: Any
) -> tuple[Gate, ...]:
    """The concurrency limits held by the instance's rows matching `where` (that hold a slot now),
    read before the caller moves them out of the count; () without a query for a workflow whose
    nodes are under no limit."""
    definition = catalog.load_definition(engine, definition_id, conn)
    if not may_hold(definition):
        return ()
    rows = conn.execute(
        select(NodeRow.node_id, NodeRow.executor, InstanceRow.workflow_name)
        .join(InstanceRow, InstanceRow.id == NodeRow.instance_id)
        .where(NodeRow.instance_id == instance_id, HOLDING, *where)
    ).all()
    return merge(*(of_node(definition, r.workflow_name, r.node_id, r.executor) for r in rows))


# a running attempt of an executor let through by admission: what a cancel leaves its slot to
_RUNS_EXECUTOR = and_(NodeRow.status == N.RUNNING.value, ADMITTED, NodeRow.executor.is_not(None))
_NOT_RUNNING_EXECUTOR = or_(NodeRow.status != N.RUNNING.value, NOT_ADMITTED, NodeRow.executor.is_(None))


def cancel_open(conn: Connection, engine: Engine, instance_id: str, definition_id: int) -> tuple[Gate, ...]:
    """Cancel every open node of an instance (`lifecycle.cancel_open_nodes`), keeping the slot of a
    running attempt under a limit until that attempt stops (module doc); the limits freed now."""
    from orchestrator import lifecycle  # lifecycle calls this module

    definition = catalog.load_definition(engine, definition_id, conn)
    if not may_hold(definition):
        lifecycle.cancel_open_nodes(conn, instance_id)
        return ()
    # what is queued (or runs no executor: a sub-workflow's node) frees its slot now; a running
    # executor's attempt under a limit keeps it (below)
    gates = freed(conn, engine, instance_id, definition_id, _NOT_RUNNING_EXECUTOR)
    now = utcnow()
    move_nodes(
        conn,
        N.CANCELLED,
        NodeRow.instance_id == instance_id,
        _RUNS_EXECUTOR,
        sources=[N.RUNNING],
        finished_at=now,
        heartbeat_at=now,  # the slot is held until the attempt ends or this heartbeat expires
    )
    lifecycle.cancel_open_nodes(conn, instance_id)
    return gates


def hand_back_admitted(
    conn: Connection, engine: Engine, instance_id: str, definition_id: int
) -> tuple[Gate, ...]:
    """A pause: the instance's admitted nodes whose message no worker has claimed give their slots
    back; they wait (`limit_wait` set, so a stray copy of the message cannot run them) and go
    through admission again when `resume` sends them. The limits freed."""
    definition = catalog.load_definition(engine, definition_id, conn)
    if not may_hold(definition):
        return ()
    rows = conn.execute(
        select(NodeRow.id, NodeRow.node_id, NodeRow.executor, InstanceRow.workflow_name)
        .join(InstanceRow, InstanceRow.id == NodeRow.instance_id)
        .where(NodeRow.instance_id == instance_id, NodeRow.status == N.QUEUED.value, ADMITTED)
    ).all()
    found: list[Gate] = []
    for row in rows:
        gates = limits.node_gates(row.workflow_name, row.node_id, row.executor, _own(definition, row.node_id))
        if not gates:
            continue
        concurrency = [g for g in gates if g.kind == CONCURRENCY]
        found += concurrency
        # what it waits for: a pass that will bring it back (its first slot's, else its rate's)
        mark = concurrency[0].name if concurrency else rate_horizon.wait_name(gates[0])
        conn.execute(
            update(NodeRow)
            .where(NodeRow.id == row.id, NodeRow.status == N.QUEUED.value, ADMITTED)
            .values(admitted_attempt=None, limit_wait=mark)
        )
    return merge(found)


def let_go(engine: Engine, row_id: int, attempt: int) -> None:
    """An attempt whose node was cancelled while it ran has stopped: its slot is free."""
    with engine.begin() as conn:
        conn.execute(
            update(NodeRow)
            .where(NodeRow.id == row_id, NodeRow.attempt == attempt, KEPT_BY_CANCEL)
            .values(heartbeat_at=None)
        )


@retrying()
def expire_cancelled(engine: Engine, timeout: float) -> tuple[Gate, ...]:
    """The sweep's step: cancelled attempts whose heartbeat stopped `timeout` seconds ago (their
    worker died, or their executor never saw `should_stop`) give their slots back; the limits freed."""
    cutoff = utcnow() - timedelta(seconds=timeout)
    with engine.begin() as conn:
        rows = conn.execute(
            select(NodeRow.id, NodeRow.node_id, NodeRow.executor, InstanceRow.workflow_name)
            .add_columns(InstanceRow.definition_id)
            .join(InstanceRow, InstanceRow.id == NodeRow.instance_id)
            .where(KEPT_BY_CANCEL, NodeRow.heartbeat_at < cutoff)
            .limit(500)
        ).all()
        if not rows:
            return ()
        conn.execute(
            update(NodeRow)
            .where(NodeRow.id.in_([r.id for r in rows]), KEPT_BY_CANCEL, NodeRow.heartbeat_at < cutoff)
            .values(heartbeat_at=None)
        )
        return merge(
            *(
                of_node(
                    catalog.load_definition(engine, r.definition_id, conn),
                    r.workflow_name,
                    r.node_id,
                    r.executor,
                )
                for r in rows
            )
        )
