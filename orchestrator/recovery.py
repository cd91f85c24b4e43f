"""The recovery sweep: hand back nodes whose lease expired, resend queued nodes whose message was
lost, start pending instances whose `schedule` message was lost or whose startAt has come, resend
callbacks whose `notify` message was lost, apply workflow timeouts, mark silent workers gone, and run
each node type's own recovery (`orchestrator/nodes/`: a child instance whose end never reached its
parent node, a sleep whose time has come).

Every action is a compare-and-set, so a sweep racing another sweep (two beats) or a slow worker acts
at most once per node attempt; the lock in `workers/beat.py` only saves the duplicate work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, or_, select, update

from orchestrator import (
    admission,
    callbacks,
    catalog,
    completion,
    delayed_start,
    key_limits,
    logs,
    map_items,
    nodes,
    rate_horizon,
    resends,
    scheduling,
    slot_holders,
    unreachable,
)
from orchestrator.db import retrying
from orchestrator.errors import LostClaim
from orchestrator.limits import Gate
from orchestrator.models import InstanceRow, NodeRow, WorkerRow, utcnow
from orchestrator.outcomes import Claim, Dispatch, Finished, Outcome, dispatch_for
from orchestrator.states import InstanceStatus as I
from orchestrator.states import NodeStatus as N
from orchestrator.transitions import move_nodes

log = logging.getLogger(__name__)

MAX_HANDBACKS = 5  # a node that kills its worker this often fails instead of looping forever
BATCH = 500


@dataclass
class SweepReport:
    handed_back: int = 0
    resent: int = 0
    started: int = 0
    timed_out: int = 0
    workers_gone: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # actions that raised (logged); the others ran
    overdue_callbacks: list[callbacks.Overdue] = field(default_factory=list)  # their `notify` was lost

    @property
    def dispatches(self) -> list[Dispatch]:
        return [d for o in self.outcomes for d in o.dispatches]

    @property
    def finished(self) -> list[Finished]:
        return [o.finished for o in self.outcomes if o.finished is not None]


@dataclass(frozen=True)
class SweepSettings:
    heartbeat_timeout: float  # s without a heartbeat before a running node is handed back
    resend_after: float  # s a message may take before it is presumed lost
    # messages waiting per queue, as the broker counts them (see `resends`); None: it cannot count
    count_waiting: resends.QueueCounter | None = None


def sweep(
    engine: Engine,
    heartbeat_timeout: float,
    resend_after: float | None = None,
    count_waiting: resends.QueueCounter | None = None,
) -> SweepReport:
    """One pass of every recovery action. `resend_after` (s) defaults to the heartbeat timeout;
    `count_waiting` tells a queued node's lost message from one waiting on its queue (`resends`).

    An action that raises is logged and named in `failed`; the others still run, and what they did is
    in the report (a query that fails on one database must not stop every hand-back)."""
    report = SweepReport()
    settings = SweepSettings(
        heartbeat_timeout, heartbeat_timeout if resend_after is None else resend_after, count_waiting
    )
    for action in _ACTIONS:
        try:
            action(engine, report, settings)
        except Exception:
            log.exception("recovery action %s failed; the other actions still run", action.__name__)
            report.failed.append(action.__name__)
    return report


def _mark_gone(engine: Engine, report: SweepReport, settings: SweepSettings) -> None:
    report.workers_gone = mark_silent_workers_gone(engine, settings.heartbeat_timeout)


def _hand_back_expired(engine: Engine, report: SweepReport, settings: SweepSettings) -> None:
    timeout = settings.heartbeat_timeout
    for row in _expired_leases(engine, timeout):
        stale = nodes.of_row(row.type).untouched_since(utcnow() - timedelta(seconds=timeout))
        outcome = hand_back(engine, row, reason="heartbeat expired or worker gone", untouched_since=stale)
        if outcome is not None:
            report.handed_back += 1
            report.outcomes.append(outcome)


def _time_out_expired(engine: Engine, report: SweepReport, _settings: SweepSettings) -> None:
    for instance_id in _expired_instances(engine):
        outcome = time_out(engine, instance_id)
        if outcome.finished is not None:
            report.timed_out += 1
            report.outcomes.append(outcome)


def _resend_queued(engine: Engine, report: SweepReport, settings: SweepSettings) -> None:
    resent = resend_lost_queued(engine, settings.resend_after, settings.count_waiting)
    report.resent += len(resent)
    report.outcomes.append(Outcome(resent))


def _let_go_cancelled(engine: Engine, report: SweepReport, settings: SweepSettings) -> None:
    """Cancelled attempts that kept their slots and whose heartbeat expired give them back."""
    freed = slot_holders.expire_cancelled(engine, settings.heartbeat_timeout)
    if freed:
        report.outcomes.append(Outcome(freed=freed))


def _admit_rate_waiting(engine: Engine, report: SweepReport, _settings: SweepSettings) -> None:
    """Nodes waiting for a rate's horizon whose booked tokens' starts never came (`rate_horizon`)."""
    admitted = rate_horizon.sweep(engine)
    report.resent += len(admitted)
    report.outcomes.append(Outcome(admitted))


def _admit_waiting(engine: Engine, report: SweepReport, _settings: SweepSettings) -> None:
    admitted = admission.sweep_waiting(engine)
    report.resent += len(admitted)
    report.outcomes.append(Outcome(admitted))


def _start_pending(engine: Engine, report: SweepReport, settings: SweepSettings) -> None:
    for outcome in start_lost_pending(engine, settings.resend_after):
        report.started += 1
        report.outcomes.append(outcome)


def _start_keyed(engine: Engine, report: SweepReport, settings: SweepSettings) -> None:
    for outcome in key_limits.start_free(engine, settings.resend_after, scheduling.start):
        report.started += 1
        report.outcomes.append(outcome)


def _start_delayed(engine: Engine, report: SweepReport, _settings: SweepSettings) -> None:
    for outcome in delayed_start.start_due(engine):
        report.started += 1
        report.outcomes.append(outcome)


def _node_type_actions(engine: Engine, report: SweepReport, settings: SweepSettings) -> None:
    """Each node type's own recovery (`NodeType.sweep_actions`, e.g. a child's lost end reported
    again); one that raises is logged and named, and the others still run."""
    for kind in nodes.TYPES.values():
        for action in kind.sweep_actions():
            try:
                outcomes = action(engine, settings.resend_after)
            except Exception:
                log.exception("recovery action %s of %s nodes failed", action.__name__, kind.name)
                report.failed.append(f"{kind.name}.{action.__name__}")
                continue
            report.resent += len(outcomes)
            report.outcomes.extend(outcomes)


def _resend_callbacks(engine: Engine, report: SweepReport, settings: SweepSettings) -> None:
    report.overdue_callbacks = callbacks.overdue(engine, settings.resend_after, BATCH)
    report.resent += len(report.overdue_callbacks)


def _prune_idle_keys(engine: Engine, _report: SweepReport, _settings: SweepSettings) -> None:
    key_limits.prune_idle(engine)


_ACTIONS = (
    _mark_gone,
    _hand_back_expired,
    _time_out_expired,
    _resend_queued,
    _let_go_cancelled,
    _admit_waiting,
    _admit_rate_waiting,
    _start_pending,
    _start_keyed,
    _start_delayed,
    _node_type_actions,
    _resend_callbacks,
    _prune_idle_keys,
)


class RunningNode(NamedTuple):
    """What a hand-back needs of a running node (`_LEASE` selects it, in order)."""

    id: int
    instance_id: str
    node_id: str
    attempt: int
    handbacks: int
    worker_id: str | None
    type: str


_LEASE = (
    NodeRow.id,
    NodeRow.instance_id,
    NodeRow.node_id,
    NodeRow.attempt,
    NodeRow.handbacks,
    NodeRow.worker_id,
    NodeRow.type,
)


def _expired_leases(engine: Engine, timeout: float) -> list[RunningNode]:
    """Running nodes to hand back: those their type says nothing will complete (`NodeType.lost`),
    such as an executor's node whose heartbeat stopped or whose worker is gone."""
    cutoff = utcnow() - timedelta(seconds=timeout)
    gone = select(WorkerRow.id).where(WorkerRow.status == "gone")
    lost = or_(*(kind.lost(cutoff, gone) for kind in nodes.TYPES.values()))
    with engine.connect() as conn:
        statement = select(*_LEASE).where(NodeRow.status == N.RUNNING.value, lost).limit(BATCH)
        return [RunningNode._make(row) for row in conn.execute(statement)]


@retrying()
def hand_back(
    engine: Engine, row: RunningNode, reason: str, untouched_since: datetime | None = None
) -> Outcome | None:
    """Recover a node whose lease expired: running -> queued with attempt + 1 (fenced on the attempt
    seen), and the message to resend. Returns None when the node moved on meanwhile.

    With `untouched_since`, only if its heartbeat is still older than that: a sub-workflow node's
    child is created under a renewal of that heartbeat (`leases.renew_node`), so of the two (the
    child, the hand-back) the first to commit wins and the other changes nothing.

    Each such hand-back counts: past MAX_HANDBACKS the node fails instead, so a node that kills its
    worker (out of memory) cannot loop forever through redeliveries.
    """
    now = utcnow()
    guard = () if untouched_since is None else (NodeRow.heartbeat_at < untouched_since,)
    with engine.begin() as conn:
        if row.handbacks + 1 > MAX_HANDBACKS:
            error = {"code": "TOO_MANY_HANDBACKS", "message": f"{reason}, {row.handbacks + 1} times"}
            failed = move_nodes(
                conn,
                N.FAILED,
                NodeRow.id == row.id,
                *guard,
                sources=[N.RUNNING],
                fence=row.attempt,
                finished_at=now,
                error=error,
            )
            if not failed:
                return None
            freed = _freed_by(conn, engine, row.instance_id, row.node_id)
            if map_items.map_of(row.node_id) is not None:  # a map's item fails its map's way
                outcome = completion.item_failed_for_good(
                    conn, engine, row.instance_id, row.node_id, error, now
                )
                outcome.freed = slot_holders.merge(outcome.freed, freed)
                return outcome
            failure = {
                "code": "NODE_FAILED",
                "nodeId": row.node_id,
                "message": f"node {row.node_id} lost its worker {row.handbacks + 1} times",
            }
            return Outcome(
                finished=unreachable.fail_instance(conn, engine, row.instance_id, row.node_id, failure, now),
                freed=freed,
            )
        if not _requeue(
            conn,
            row_id=row.id,
            instance_id=row.instance_id,
            node_id=row.node_id,
            attempt=row.attempt,
            worker_id=row.worker_id,
            reason=reason,
            guard=guard,
            handbacks=row.handbacks + 1,
        ):
            return None
        return _requeued(conn, engine, row.instance_id, row.id, row.node_id)


@retrying()
def hand_back_held(engine: Engine, held: Claim, reason: str, *, level: str = "warning") -> Outcome:
    """Give back a node this worker holds whose executor stopped because it was asked to (the worker
    is shutting down, the instance was paused): like `hand_back`, but not counted against
    MAX_HANDBACKS (a rolling restart or a pause is no fault of the node), and no failure either. The
    node is `queued` with attempt + 1 and sent at once while its instance runs; a paused instance's
    node waits queued for `resume` to send it. Raises LostClaim (cancelled, or taken over)."""
    with held.unwritten.taken() as earlier, engine.begin() as conn:
        logs.write(conn, *earlier)  # the claim's "node running" line goes before the hand-back's
        if not _requeue(
            conn,
            row_id=held.row_id,
            instance_id=held.instance_id,
            node_id=held.node_id,
            attempt=held.attempt,
            worker_id=held.worker_id,
            reason=reason,
            level=level,
        ):
            raise LostClaim(f"node {held.node_id} attempt {held.attempt} no longer holds its claim")
        return _requeued(conn, engine, held.instance_id, held.row_id, held.node_id)


def _requeue(
    conn: Connection,
    *,
    row_id: int,
    instance_id: str,
    node_id: str,
    attempt: int,
    worker_id: str | None,
    reason: str,
    guard: tuple[Any, ...] = (),
    level: str = "warning",
    **values: Any,
) -> bool:
    if not move_nodes(
        conn,
        N.QUEUED,
        NodeRow.id == row_id,
        *guard,
        sources=[N.RUNNING],
        fence=attempt,
        attempt=attempt + 1,
        queued_at=utcnow(),
        heartbeat_at=None,
        **values,
    ):
        return False
    logs.write(
        conn,
        logs.LogEntry(
            instance_id,
            f"node handed back ({reason}); attempt {attempt + 1} queued",
            level=level,
            node_id=node_id,
            worker_id=worker_id,
            attempt=attempt + 1,
            details={"status": "queued", "previousWorker": worker_id, "reason": reason},
        ),
    )
    return True


def hand_back_worker_nodes(engine: Engine, worker_id: str, reason: str) -> list[Outcome]:
    """Hand back every node still running on `worker_id`: at the end of its shutdown grace, or when
    a worker with this id starts again (nothing can be running in a process that just started)."""
    with engine.connect() as conn:
        held_by_it = select(*_LEASE).where(
            NodeRow.status == N.RUNNING.value, NodeRow.worker_id == worker_id, nodes.leased()
        )
        rows = [RunningNode._make(row) for row in conn.execute(held_by_it)]
    outcomes = []
    for row in rows:
        with engine.begin() as conn:
            requeued = _requeue(
                conn,
                row_id=row.id,
                instance_id=row.instance_id,
                node_id=row.node_id,
                attempt=row.attempt,
                worker_id=row.worker_id,
                reason=reason,
            )
            if requeued:
                outcomes.append(_requeued(conn, engine, row.instance_id, row.id, row.node_id))
    return outcomes


def _requeued(conn: Connection, engine: Engine, instance_id: str, row_id: int, node_id: str) -> Outcome:
    """A node handed back to its next attempt: its message if its instance runs (whose admission runs
    the pass of its limits), else the limits whose slots its running attempt held."""
    dispatches = _dispatches_for(conn, engine, instance_id, NodeRow.id == row_id)
    return Outcome(dispatches, freed=() if dispatches else _freed_by(conn, engine, instance_id, node_id))


def _freed_by(conn: Connection, engine: Engine, instance_id: str, node_id: str) -> tuple[Gate, ...]:
    """The concurrency limits a running node held (no query for a workflow without limits but the
    instance's head)."""
    inst = scheduling.instance_row(conn, instance_id)
    definition = catalog.load_definition(engine, inst.definition_id, conn)
    if not slot_holders.may_hold(definition):
        return ()
    try:
        executor = definition.node(node_id).executor
    except KeyError:
        return ()
    return slot_holders.of_node(definition, inst.workflow_name, node_id, executor)


def _dispatches_for(conn: Connection, engine: Engine, instance_id: str, *where: Any) -> list[Dispatch]:
    """The messages of the instance's queued nodes matching `where`, if it runs (else resume sends)."""
    inst = scheduling.instance_row(conn, instance_id)
    if inst.status != I.RUNNING.value:
        return []
    definition = catalog.load_definition(engine, inst.definition_id, conn)
    nodes_queued = scheduling.queued_rows(conn, instance_id, *where)
    return [dispatch_for(inst, definition, node) for node in nodes_queued]


def resend_lost_queued(
    engine: Engine, older_than: float, count_waiting: resends.QueueCounter | None = None
) -> list[Dispatch]:
    """Queued nodes of running instances whose message is gone, sent again (`resends`): unclaimed
    for `older_than` seconds since it was sent, and nothing waits on their queue by `count_waiting`
    (without it, a few per queue and sweep). Resending is safe: the claim is a compare-and-set, so
    if the first message turns up after all, one of the two is a no-op."""
    return resends.resend_lost(engine, older_than, count_waiting, BATCH)


def start_lost_pending(engine: Engine, older_than: float) -> list[Outcome]:
    """Start pending instances whose start was asked for `older_than` seconds ago and never happened:
    their `schedule` message was lost (a broker restart, a crash between the commit and the send).
    Instances created with `start: false` have no start request and wait. `scheduling.start` is
    idempotent, so a `schedule` message that was only slow finds the instance running."""
    now = utcnow()
    cutoff = now - timedelta(seconds=older_than)
    with engine.connect() as conn:
        rows = conn.execute(
            select(InstanceRow.id, InstanceRow.start_requested_at, InstanceRow.start_at)
            .where(
                InstanceRow.status == I.PENDING.value,
                InstanceRow.start_requested_at < cutoff,
                # one with a concurrency key is started per key (`key_limits.start_free`): those held
                # back for their key, any number, would else fill every batch
                or_(InstanceRow.concurrency_key.is_(None), InstanceRow.start_at > now),
            )
            .order_by(InstanceRow.start_requested_at)
            .limit(BATCH)
        ).all()
    # a start asked for at another time than the startAt (a retry, whose process died before its
    # start) was asked for now, not for the startAt still to come
    return [scheduling.start(engine, row.id, early=_asked_for_now(row)) for row in rows]


def _asked_for_now(row: Any) -> bool:
    return row.start_at is not None and row.start_requested_at != row.start_at


def _expired_instances(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(InstanceRow.id)
                .where(
                    InstanceRow.status.in_([I.RUNNING.value, I.PAUSED.value]),
                    InstanceRow.deadline_at < utcnow(),
                )
                .limit(BATCH)
            ).scalars()
        )


@retrying()
def time_out(engine: Engine, instance_id: str) -> Outcome:
    """Fail an instance past its workflow timeout with code TIMEOUT and stop its open nodes."""
    with engine.begin() as conn:
        error = {"code": "TIMEOUT", "message": "the workflow exceeded its timeout"}
        finished = scheduling.finish_instance(conn, instance_id, I.FAILED, error)
        if finished is not None:
            definition_id = scheduling.instance_row(conn, instance_id).definition_id
            freed = slot_holders.cancel_open(conn, engine, instance_id, definition_id)
            finished = replace(finished, freed=freed) if freed else finished
        return Outcome(finished=finished)


@retrying()
def mark_silent_workers_gone(engine: Engine, timeout: float) -> int:
    cutoff = utcnow() - timedelta(seconds=timeout)
    with engine.begin() as conn:
        return conn.execute(
            update(WorkerRow)
            .where(WorkerRow.status != "gone", WorkerRow.last_heartbeat_at < cutoff)
            .values(status="gone")
        ).rowcount
