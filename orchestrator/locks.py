"""A named, non-blocking advisory lock for singletons (the recovery sweep)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text


@contextmanager
def advisory_lock(engine: Engine, name: str) -> Iterator[bool]:
    """Yield True if this process holds `name` for the block, False if another holder has it.

    MySQL's GET_LOCK belongs to the connection, so a holder that dies releases it with its
    connection: no expiry to tune, no double holder. SQLite (the one-process embedded profile)
    always yields True; its writers are serialised by the database file lock anyway.
    """
    if engine.dialect.name not in ("mysql", "mariadb"):
        yield True
        return
    with engine.connect() as conn:
        got = conn.execute(text("SELECT GET_LOCK(:name, 0)"), {"name": name}).scalar() == 1
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
            conn.rollback()
