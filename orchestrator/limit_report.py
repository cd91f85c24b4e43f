"""`GET /api/v1/limits` and the limit gauges: each limit, its use and what waits for it."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select

from orchestrator import key_limits, limits, rate_horizon
from orchestrator.admission import START
from orchestrator.limit_rows import ADMITTED, NOT_ADMITTED, in_use, under
from orchestrator.limits import CONCURRENCY, RATE, Gate
from orchestrator.models import InstanceRow, LimitRow, NodeRow, utcnow
from orchestrator.states import InstanceStatus as I
from orchestrator.states import NodeStatus as N


def report(engine: Engine) -> list[dict[str, Any]]:
    """Every limit (declared on an executor, or used since: a node's, a key's), with its slots in
    use (a rate: tokens of its burst taken) and what waits for it; `GET /api/v1/limits`."""
    known: dict[tuple[str, str], str] = {}
    for executor, declared in limits.executor_limits().items():
        for gate in declared.gates(f"executor:{executor}"):
            known[gate.kind, gate.name] = str(gate.shown)
    tats: dict[tuple[str, str], float | None] = {}
    with engine.connect() as conn:
        for row in conn.execute(
            select(LimitRow.kind, LimitRow.name, LimitRow.value, LimitRow.tat).where(LimitRow.kind != START)
        ):
            if row.name.startswith("executor:") and (row.kind, row.name) not in known:
                continue  # no longer declared
            known.setdefault((row.kind, row.name), row.value)
            tats[row.kind, row.name] = row.tat
        entries = [
            _entry(conn, kind, name, value, tats.get((kind, name)))
            for (kind, name), value in sorted(known.items(), key=lambda item: (item[0][1], item[0][0]))
        ]
    # a key's row stays once used; one with nothing running or waiting is not worth a line per value
    return [e for e in entries if not e["name"].startswith("key:") or e["inUse"] or e["waiting"]]


def _entry(conn: Connection, kind: str, name: str, value: str, tat: float | None) -> dict[str, Any]:
    if kind == RATE:
        rate = limits.parse_rate(value)
        waiting = select(func.count()).where(
            NodeRow.status == N.QUEUED.value,
            or_(
                and_(NodeRow.limit_wait == name, ADMITTED, NodeRow.not_before > utcnow()),  # its countdown
                # beyond the tokens booked ahead (`rate_horizon`)
                and_(NodeRow.limit_wait == rate_horizon.wait_name(Gate(RATE, name, rate)), NOT_ADMITTED),
            ),
        )
        used = limits.bucket_used(tat, time.time(), rate)
        return {"name": name, "kind": kind, "limit": value, "inUse": used, "waiting": _count(conn, waiting)}
    if name.startswith("key:"):
        used = key_limits.in_use(conn, name)
        waiting = select(func.count()).select_from(key_limits.waiting(name, utcnow()).subquery())
        return {
            "name": name,
            "kind": kind,
            "limit": int(value),
            "inUse": used,
            "waiting": _count(conn, waiting),
        }
    gate = Gate(CONCURRENCY, name, int(value))
    waiting = (
        select(func.count())
        .select_from(NodeRow)
        .join(InstanceRow, InstanceRow.id == NodeRow.instance_id)
        .where(
            under(gate),
            NodeRow.status == N.QUEUED.value,
            NOT_ADMITTED,
            InstanceRow.status == I.RUNNING.value,
        )
    )
    return {
        "name": name,
        "kind": kind,
        "limit": int(value),
        "inUse": in_use(conn, gate),
        "waiting": _count(conn, waiting),
    }


def _count(conn: Connection, query: Any) -> int:
    return int(conn.execute(query).scalar_one())
