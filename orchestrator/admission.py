"""Admission under limits: who holds a slot, who waits, and rate tokens, cluster-wide, in the store.

The accounting is a count, never a counter: the slots of a concurrency limit in use are the rows under
it that are `running`, or `queued` with this attempt admitted (its message sent). A node's end, its
failure, a hand-back to the next attempt or a cancel takes its row out of that count in the very
transaction that moves it, so no slot can leak and a late finisher (fenced on its attempt) frees
nothing it does not hold. Each limit has a row in `limits`; admissions under it lock that row first
and so decide one at a time, whatever the number of worker processes and hosts.

- A node whose message is about to be sent (`admit`), when it is held to a concurrency limit, is
  admitted only while a slot is free; else it stays `queued` with `limit_wait` set and no message.
  Each admission pass lets through the waiting nodes of the limit in order of their instance's
  priority, then queueing time (FIFO), as many as slots are free.
- Every transaction that frees a slot (a node's end, a sub-workflow node's end, a cancel, a pause, a
  timeout, an instance failure, a hand-back) reports the limits it freed (`Outcome.freed`, read by
  `slot_holders.py`), and `release` runs right after its commit (`workers/tasks.py: follow_up`); the
  recovery sweep runs the same pass for every limit with waiting nodes (`sweep_waiting`), so a
  release lost with its process only delays them by a sweep. A cancelled attempt whose executor
  still runs keeps its slot until it stops (`slot_holders`).
- A rate limit is a GCRA bucket (`limits.rate_delay`) in the limit's row: an admitted node books the
  next token and its message is sent with the countdown to it, while at most `HORIZON_TOKENS` are
  booked ahead; the others wait as rows for a pass as tokens come due (`rate_horizon.py`). It waits
  in no worker slot.

A definition's concurrency key (instances, not nodes) is `key_limits.py`.

A claim refuses a node that waits for a slot (`transitions.claim_node`), so a stray copy of its
message cannot run it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, or_, select, update

from orchestrator import catalog, limit_overrides, limit_queue, limits, rate_horizon
from orchestrator.db import retrying
from orchestrator.limit_overrides import UNLIMITED
from orchestrator.limit_rows import NOT_ADMITTED, in_use, lock, under
from orchestrator.limits import CONCURRENCY, RATE, Gate, Rate, rate_delay
from orchestrator.models import InstanceRow, LimitRow, NodeRow, utcnow
from orchestrator.outcomes import Dispatch, QueuedNode, dispatch_for
from orchestrator.scheduling import QUEUED_NODE
from orchestrator.states import NodeStatus as N


def _waiting(gate: Gate, now: datetime) -> Any:
    """The nodes a pass of `gate` may let through, in order. A node parked on another of its limits
    (`limit_wait` names it: it found that one full) is left to that limit's own pass, which brings
    it back here if this one is full then; else a window of nodes all parked elsewhere would keep
    this limit's free slots from the nodes behind them."""
    return limit_queue.waiting(gate, now, or_(NodeRow.limit_wait.is_(None), NodeRow.limit_wait == gate.name))


class _Pass:
    """One admission transaction: the limits it locked and the slots each has left."""

    def __init__(self, conn: Connection, engine: Engine) -> None:
        self.conn = conn
        self.engine = engine
        self.free: dict[str, int] = {}
        self.locked: set[str] = set()
        self.tats: dict[str, float | None] = {}  # each rate's bucket, its row locked
        self.now = utcnow()

    def lock(self, gate: Gate) -> None:
        if gate.name not in self.locked:
            lock(self.conn, CONCURRENCY, gate.name, str(gate.shown), read=False)
            self.locked.add(gate.name)

    def room(self, gate: Gate) -> int:
        if gate.name not in self.free:
            self.lock(gate)
            # the value now, read under the lock (an API override may have changed it since `gate`)
            limit = limit_overrides.concurrency_under_lock(self.conn, gate)
            self.free[gate.name] = UNLIMITED if limit is None else limit - in_use(self.conn, gate)
        return self.free[gate.name]

    def admit(self, d: Dispatch, not_before: datetime | None) -> Dispatch | None:
        """Let `d` through: take a slot of each of its concurrency limits and a token of each rate;
        the message to send (with the countdown to its token), or None if the node moved on or one of
        its rates has booked its horizon (it then waits for that rate: `rate_horizon`)."""
        full = rate_horizon.full(self, d)
        if full is not None:
            self.hold([d.row_id or 0], rate_horizon.waiting_gate(full))
            return None
        delay, waits_for = self._tokens(d)
        countdown = max(d.countdown, delay)
        if not_before is not None:
            countdown = max(countdown, (not_before - self.now).total_seconds())
        values: dict[str, Any] = {"admitted_attempt": NodeRow.attempt, "limit_wait": None}
        if delay > 0:
            values.update(limit_wait=waits_for, not_before=self.now + timedelta(seconds=countdown))
        moved = self.conn.execute(
            update(NodeRow)
            .where(NodeRow.id == d.row_id, NodeRow.status == N.QUEUED.value, NodeRow.attempt == d.attempt)
            .values(**values)
        ).rowcount
        if not moved:
            return None
        for gate in d.limits:
            if gate.kind == CONCURRENCY:
                self.free[gate.name] = self.room(gate) - 1
        return replace(d, countdown=countdown)

    def _tokens(self, d: Dispatch) -> tuple[float, str | None]:
        longest, waits_for = 0.0, None
        for gate in sorted((g for g in d.limits if g.kind == RATE), key=lambda g: g.name):
            assert isinstance(gate.limit, Rate)
            tat = self.rate_tat(gate)
            delay, new_tat = rate_delay(tat, time.time(), gate.limit)
            where = (LimitRow.kind == RATE, LimitRow.name == gate.name)
            self.conn.execute(update(LimitRow).where(*where).values(tat=new_tat))
            self.tats[gate.name] = new_tat
            if delay > longest:
                longest, waits_for = delay, gate.name
        return longest, waits_for

    def rate_tat(self, gate: Gate) -> float | None:
        """A rate's bucket, its row locked for the rest of the transaction (read once a pass)."""
        if gate.name not in self.tats:
            self.tats[gate.name] = lock(self.conn, RATE, gate.name, str(gate.shown))
        return self.tats[gate.name]

    def hold(self, row_ids: list[int], gate: Gate, *, unless_held: bool = False) -> None:
        """These nodes wait for `gate` (with `unless_held`, those that wait for no other)."""
        if not row_ids:
            return
        where = [NodeRow.id.in_(row_ids), NodeRow.status == N.QUEUED.value, NOT_ADMITTED]
        if unless_held:
            where.append(NodeRow.limit_wait.is_(None))
        self.conn.execute(update(NodeRow).where(*where).values(limit_wait=gate.name))

    def waiting_under(self, gate: Gate, count: int) -> list[tuple[Dispatch, datetime | None]]:
        rows = self.conn.execute(_waiting(gate, self.now).limit(count)).all()
        found = []
        width = len(QUEUED_NODE)
        for row in rows:
            definition = catalog.load_definition(self.engine, row.definition_id, self.conn)
            d = dispatch_for(row, definition, QueuedNode._make(row[:width]))
            found.append((d, row.not_before))
        return found

    def mark_waiting(self, gate: Gate) -> None:
        """Every node still waiting under `gate` with no reason yet says it waits for it."""
        ids = select(NodeRow.id).join(InstanceRow, InstanceRow.id == NodeRow.instance_id)
        ids = ids.where(under(gate), NodeRow.status == N.QUEUED.value, NOT_ADMITTED)
        ids = ids.where(NodeRow.limit_wait.is_(None))
        found = list(self.conn.execute(ids).scalars())
        if found:
            self.conn.execute(update(NodeRow).where(NodeRow.id.in_(found)).values(limit_wait=gate.name))


@retrying()
def admit(engine: Engine, dispatches: list[Dispatch]) -> list[Dispatch]:
    """The messages to send out of `dispatches` (each held to some limit): those admitted now or
    before (a resend of an admitted attempt), and any other node a pass over their concurrency
    limits lets through; the others wait, marked with the limit they wait for."""
    with engine.begin() as conn:
        run = _Pass(conn, engine)
        ids = [d.row_id for d in dispatches]
        state = {
            row.id: row
            for row in conn.execute(
                select(
                    NodeRow.id, NodeRow.attempt, NodeRow.status, NodeRow.admitted_attempt, NodeRow.not_before
                ).where(NodeRow.id.in_(ids))
            )
        }
        out: list[Dispatch] = []
        gates: dict[str, Gate] = {}
        # the nodes already waiting for these rates' horizons go first (priority, then FIFO)
        rates = {g.name: g for d in dispatches for g in d.limits if g.kind == RATE}
        for name in sorted(rates):
            out += rate_horizon.let_through(run, rates[name])
        for d in dispatches:
            row = state.get(d.row_id)
            if row is None or row.status != N.QUEUED.value or row.attempt != d.attempt:
                continue  # moved on: the message would be refused at claim
            if row.admitted_attempt == d.attempt:  # admitted before: a copy of its message
                left = 0.0 if row.not_before is None else (row.not_before - run.now).total_seconds()
                out.append(replace(d, countdown=max(d.countdown, left)))
                continue
            concurrency = [g for g in d.limits if g.kind == CONCURRENCY]
            if not concurrency:  # a rate alone: a token is booked at once if its horizon has room
                admitted = run.admit(d, row.not_before)
                if admitted is not None:
                    out.append(admitted)
                continue
            if row.not_before is not None and row.not_before > run.now:
                # a retry in its retryDelay: it waits, holding no slot, and a pass of this limit (a
                # release, or the sweep's) lets it through once it is due
                run.hold([d.row_id or 0], min(concurrency, key=lambda g: g.name))
            for gate in concurrency:
                gates.setdefault(gate.name, gate)
        for name in sorted(gates):
            out += _admit_waiting(run, gates[name])
        return _unique(out)


START = "rate-start"  # the kind of a rate's second bucket, of starts (`start_wait`)


@retrying()
def start_wait(conn: Connection, gates: Iterable[Gate], now: datetime) -> float:
    """At a claim of a node under rates, in the claim's transaction: 0 when each rate lets it start
    at `now` (taking a token of its bucket of starts), else the seconds until it would (taking
    nothing; the caller rolls the claim back).

    The tokens reserved when the message was sent spread the messages; a worker that was busy
    delivers some late and the on-time ones after them would bunch up. This second bucket, checked
    in the transaction that records the start (`started_at` is `now`), bounds the starts themselves:
    within any second at most the rate and half an interval's slack. A copy that is not claimed
    (stale, taken, its instance paused) takes no token."""
    rates = sorted((g for g in gates if g.kind == RATE), key=lambda g: g.name)
    if not rates:
        return 0.0
    epoch = now.replace(tzinfo=UTC).timestamp()
    found: list[tuple[Gate, float | None]] = []
    for gate in rates:
        assert isinstance(gate.limit, Rate)
        found.append((gate, lock(conn, START, gate.name, str(gate.shown))))
    waits = [limits.start_delay(tat, epoch, g.limit) for g, tat in found if isinstance(g.limit, Rate)]
    if max(waits) > 0:
        return max(waits)
    for gate, tat in found:
        assert isinstance(gate.limit, Rate)
        new_tat = limits.start_taken(tat, epoch, gate.limit)
        conn.execute(
            update(LimitRow).where(LimitRow.kind == START, LimitRow.name == gate.name).values(tat=new_tat)
        )
    return 0.0


WINDOW = 64  # waiting nodes one pass reads; a pass that reads this many marks the rest in bulk


def _admit_waiting(run: _Pass, gate: Gate) -> list[Dispatch]:
    """Let through the nodes waiting under `gate`, in order, while it has free slots (and each one's
    other concurrency limits too); those left say they wait for it. With none waiting (a release
    that finds nobody), it is the lock and one read."""
    run.lock(gate)
    waiting = run.waiting_under(gate, WINDOW)
    out: list[Dispatch] = []
    left: list[int] = []
    for d, not_before in waiting:
        if run.room(gate) <= 0:
            left.append(d.row_id or 0)
            continue
        blocked = next((g for g in d.limits if g.kind == CONCURRENCY and run.room(g) <= 0), None)
        if blocked is not None:
            run.hold([d.row_id or 0], blocked)
            continue
        admitted = run.admit(d, not_before)
        if admitted is not None:
            out.append(admitted)
    run.hold(left, gate, unless_held=True)
    if len(waiting) == WINDOW:
        run.mark_waiting(gate)
    return out


def _unique(dispatches: Iterable[Dispatch]) -> list[Dispatch]:
    seen: dict[tuple[str, str, int], Dispatch] = {}
    for d in dispatches:
        seen.setdefault((d.instance_id, d.node_id, d.attempt), d)
    return list(seen.values())


@retrying()
def release(engine: Engine, gates: Iterable[Gate]) -> list[Dispatch]:
    """After a node under these limits ended (committed): the waiting nodes its slot lets through."""
    concurrency = sorted({g.name: g for g in gates if g.kind == CONCURRENCY}.values(), key=lambda g: g.name)
    if not concurrency:
        return []
    with engine.begin() as conn:
        run = _Pass(conn, engine)
        return _unique(d for gate in concurrency for d in _admit_waiting(run, gate))


def sweep_waiting(engine: Engine) -> list[Dispatch]:
    """The recovery sweep's pass: every concurrency limit some node waits for gets an admission pass
    (a release whose message or process was lost leaves them waiting with free slots)."""
    with engine.connect() as conn:
        names = sorted(
            name
            for name in conn.execute(
                select(NodeRow.limit_wait)
                .where(NodeRow.status == N.QUEUED.value, NodeRow.limit_wait.is_not(None), NOT_ADMITTED)
                .distinct()
            ).scalars()
            if name is not None
        )
        if not names:
            return []
        values = dict(
            conn.execute(
                select(LimitRow.name, LimitRow.value).where(
                    LimitRow.kind == CONCURRENCY, LimitRow.name.in_(names)
                )
            ).all()
        )
    # the stored value only stands in: each pass reads an executor's value under the limit's lock
    gates = [Gate(CONCURRENCY, name, int(values[name])) for name in names if name in values]
    return release(engine, gates)
