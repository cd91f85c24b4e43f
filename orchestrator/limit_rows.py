"""The `limits` rows that admissions lock, and the order in which waiting work is let through.

Each limit in use has one row (kind, name): every admission under it locks that row first, so
admissions decide one at a time across every process; a rate's row also holds its bucket. Waiting
work goes in the order of its instance's priority, then FIFO.
"""

from __future__ import annotations

from sqlalchemy import Connection, case, insert, select, update

from orchestrator.models import InstanceRow, LimitRow, utcnow

RANK = {"critical": 0, "high": 1, "normal": 2, "low": 3}
PRIORITY_ORDER = case(RANK, value=InstanceRow.priority, else_=2)


def lock(conn: Connection, kind: str, name: str, value: str, *, read: bool = True) -> float | None:
    """Lock the limit's row (made on first use) for the rest of the transaction; its bucket's `tat`
    (read only if `read`: a concurrency limit has none)."""
    now = utcnow()
    where = (LimitRow.kind == kind, LimitRow.name == name)
    touch = update(LimitRow).where(*where).values(value=value, updated_at=now)
    if conn.execute(touch).rowcount == 0:
        ignore = "OR IGNORE" if conn.dialect.name == "sqlite" else "IGNORE"
        row = {"kind": kind, "name": name, "value": value, "updated_at": now}
        conn.execute(insert(LimitRow).prefix_with(ignore).values(**row))
        conn.execute(touch)
    return conn.execute(select(LimitRow.tat).where(*where)).scalar() if read else None
