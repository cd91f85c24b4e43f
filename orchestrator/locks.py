"""A named advisory lock for singletons (the recovery sweep, the schedule passes)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError


@contextmanager
def advisory_lock(
    engine: Engine, name: str, expire_after: float | None = None, wait: int = 0
) -> Iterator[bool]:
    """Yield True if this process holds `name` for the block, False if another holder has it (still,
    after waiting up to `wait` seconds for it).

    MySQL's GET_LOCK belongs to the connection, so a holder that dies releases it with its
    connection. A holder that is alive but stuck (frozen by SIGSTOP, a paused VM, a hung call)
    keeps its connection open, and with it the lock; with `expire_after` (s) the server closes the
    lock's connection once it has been idle that long, which releases the lock. Use it where a
    second holder is merely wasteful (the sweep: every action is a compare-and-set). Such a
    connection goes back to the pool with the server's timeout restored, since a new connection
    (TLS and authentication) costs far more than the pass it serves; one the server has closed meanwhile
    is dropped.
    SQLite (the one-process embedded profile) always yields True; its writers are serialised by
    the database file lock anyway.
    """
    if engine.dialect.name not in ("mysql", "mariadb"):
        yield True
        return
    with engine.connect() as conn:
        if expire_after is not None:
            conn.execute(text("SET SESSION wait_timeout = :s"), {"s": max(1, math.ceil(expire_after))})
        got = conn.execute(text("SELECT GET_LOCK(:name, :wait)"), {"name": name, "wait": wait}).scalar() == 1
        try:
            yield got
        finally:
            _let_go(conn, name, got, restore_timeout=expire_after is not None)


def _let_go(conn: Connection, name: str, got: bool, *, restore_timeout: bool) -> None:
    try:
        if got:
            conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
        if restore_timeout:
            conn.execute(text("SET SESSION wait_timeout = @@GLOBAL.wait_timeout"))
        conn.rollback()
    except DBAPIError:
        # the server closed it (idle past the short timeout): the lock went with it
        conn.invalidate()
