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

# limits a page looks at beyond its size (keys with nothing running or waiting are not shown): the
# queries of one request stay bounded, whatever the number of keys
MAX_SKIPPED = 200


def report(engine: Engine) -> list[dict[str, Any]]:
    """Every limit (declared on an executor, or used since: a node's, a key's), with its slots in
    use (a rate: tokens of its burst taken) and what waits for it; `/metrics`."""
    return page(engine, None)[0]


def page(
    engine: Engine, limit: int | None, after: tuple[str, str] | None = None
) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
    """Up to `limit` limits (None: all) by name then kind, after (name, kind) `after`; and the
    (name, kind) to ask the next page after (None on the last page). An executor's limits say where
    their value comes from (`source`: api, env or code; a node's or a key's: definition)."""
    known: dict[tuple[str, str], tuple[str, str]] = {}  # (name, kind): (value, source)
    for executor in limits.executor_limits():
        for kind, (given, source) in limits.sources(executor).items():
            if given is not None and source is not None:
                shown = given.text if isinstance(given, limits.Rate) else str(given)
                known[limits.executor_gate(executor), kind] = (shown, source)
    tats: dict[tuple[str, str], float | None] = {}
    entries: list[dict[str, Any]] = []
    with engine.connect() as conn:
        # a key's row stays until the sweep prunes it: an idle one is not read at all
        rows = select(LimitRow.kind, LimitRow.name, LimitRow.value, LimitRow.tat).where(
            LimitRow.kind != START, or_(~LimitRow.name.startswith("key:", autoescape=True), key_limits.held())
        )
        if after is not None:
            rows = rows.where(LimitRow.name >= after[0])
        for row in conn.execute(rows):
            if row.name.startswith("executor:") and (row.name, row.kind) not in known:
                continue  # no longer declared
            known.setdefault((row.name, row.kind), (row.value, "definition"))
            tats[row.name, row.kind] = row.tat
        looked: list[tuple[str, str]] = []  # the limits this page looked at
        for (name, kind), (value, source) in sorted(known.items()):
            if after is not None and (name, kind) <= after:
                continue
            if limit is not None and len(entries) == limit:
                return entries, (entries[-1]["name"], entries[-1]["kind"])
            if limit is not None and len(looked) == limit + MAX_SKIPPED:
                # a page's queries stay bounded: one among many keys that show nothing ends early,
                # and the next page starts after the last limit it looked at
                return entries, looked[-1]
            looked.append((name, kind))
            entry = _entry(conn, kind, name, value, tats.get((name, kind)))
            # a key's row stays until the sweep prunes it; one with nothing running or waiting is
            # not worth a line per value
            if not name.startswith("key:") or entry["inUse"] or entry["waiting"]:
                entries.append({**entry, "source": source})
    return entries, None


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
