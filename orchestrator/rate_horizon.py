"""A rate books at most a few tokens ahead (`limits.HORIZON_TOKENS`); the nodes beyond wait as rows.

Booking every admitted node's token at once would send a large backlog under a rate as messages
with countdowns: they would sit in worker prefetch buffers as ETA messages, a higher-priority node
admitted later would wait behind all of them, and a cancelled instance's tokens would be given back
to nobody. So an admission under a rate books a token only while fewer than `HORIZON_TOKENS` are
booked and not yet due; the others stay `queued` with `limit_wait = "rate:<limit>"` and no message
(`waitingFor` says `{"limit", "kind": "rate"}`), and a pass lets them through in order of their
instance's priority, then FIFO, as tokens come due.

The pass runs at every admission under the rate (new nodes join the queue behind the waiting ones),
at every start of a node under it (`workers/tasks.py: run_node`: its token is spent, so one more may
be booked: a backlog feeds itself at the rate), and at every recovery sweep (`sweep`). So a waiting
node waits at most for the next start under its rate, or, when none is coming (the booked nodes were
cancelled or paused, their messages lost), one `ORCH_RECOVERY_INTERVAL`. A cancel gives back at
most `HORIZON_TOKENS` tokens to nobody.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select

from orchestrator import catalog, limit_queue, limits, waiting
from orchestrator.db import retrying
from orchestrator.limit_rows import NOT_ADMITTED
from orchestrator.limits import CONCURRENCY, RATE, Gate, Rate
from orchestrator.models import LimitRow, NodeRow
from orchestrator.outcomes import Dispatch, QueuedNode, dispatch_for
from orchestrator.scheduling import QUEUED_NODE
from orchestrator.states import NodeStatus as N

if TYPE_CHECKING:
    from orchestrator.admission import _Pass

PREFIX = waiting.RATE_WAIT  # a node's `limit_wait` while it waits for a rate to book its token


def wait_name(gate: Gate) -> str:
    return (PREFIX + gate.name)[: limits.MAX_NAME_LENGTH]


def waiting_gate(gate: Gate) -> Gate:
    """What `_Pass.hold` marks a node with that waits for this rate's horizon."""
    return Gate(RATE, wait_name(gate), gate.limit)


def room(run: _Pass, gate: Gate) -> int:
    """Tokens this rate may still book ahead (its row locked for the rest of the transaction)."""
    assert isinstance(gate.limit, Rate)
    return limits.HORIZON_TOKENS - limits.bucket_used(run.rate_tat(gate), time.time(), gate.limit)


def full(run: _Pass, d: Dispatch) -> Gate | None:
    """The first of `d`'s rates that has booked its horizon, or None."""
    for gate in sorted((g for g in d.limits if g.kind == RATE), key=lambda g: g.name):
        if room(run, gate) <= 0:
            return gate
    return None


def _waiting(gate: Gate, run: _Pass, count: int) -> Any:
    return limit_queue.waiting(gate, run.now, NodeRow.limit_wait == wait_name(gate)).limit(count)


def let_through(run: _Pass, gate: Gate) -> list[Dispatch]:
    """Book tokens for the nodes waiting for this rate, in order, while its horizon has room (and
    each one's concurrency limits have a free slot; one that finds a slot full waits for that)."""
    out: list[Dispatch] = []
    width = len(QUEUED_NODE)
    while (left := room(run, gate)) > 0:
        rows = run.conn.execute(_waiting(gate, run, left)).all()
        for row in rows:
            definition = catalog.load_definition(run.engine, row.definition_id, run.conn)
            d = dispatch_for(row, definition, QueuedNode._make(row[:width]))
            blocked = next((g for g in d.limits if g.kind == CONCURRENCY and run.room(g) <= 0), None)
            if blocked is not None:
                run.hold([d.row_id or 0], blocked)
                continue
            admitted = run.admit(d, row.not_before)
            if admitted is not None:
                out.append(admitted)
        if len(rows) < left:
            break
    return out


@retrying()
def release(engine: Engine, gates: Any) -> list[Dispatch]:
    """A pass over these rates (a start under them spent a token): the nodes it lets through."""
    from orchestrator import admission  # admission calls this module

    rates = sorted({g.name: g for g in gates if g.kind == RATE}.values(), key=lambda g: g.name)
    if not rates:
        return []
    with engine.begin() as conn:
        run = admission._Pass(conn, engine)
        return admission._unique(d for gate in rates for d in let_through(run, gate))


def sweep(engine: Engine) -> list[Dispatch]:
    """The recovery sweep's pass over every rate some node waits for (the value its row keeps)."""
    with engine.connect() as conn:
        waited = {
            name
            for name in conn.execute(
                select(NodeRow.limit_wait)
                .where(
                    NodeRow.status == N.QUEUED.value,
                    NodeRow.limit_wait.startswith(PREFIX, autoescape=True),
                    NOT_ADMITTED,
                )
                .distinct()
            ).scalars()
            if name is not None
        }
        if not waited:
            return []
        rows = conn.execute(
            select(LimitRow.name, LimitRow.value).where(
                LimitRow.kind == RATE, LimitRow.name.in_(sorted(n[len(PREFIX) :] for n in waited))
            )
        ).all()
    gates = []
    for name, value in rows:
        try:
            gates.append(Gate(RATE, name, limits.parse_rate(value)))
        except ValueError:
            continue
    return release(engine, gates)
