"""The advisory lock with a server-side expiry: its connection goes back to the pool as it was (the
server's own idle timeout), so the next pass reuses it instead of opening a new one; a connection
the server closed while the block ran is dropped, not pooled."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from orchestrator.locks import advisory_lock
from tests.support.fixtures import MYSQL_URL

NAME = "tests.advisory"


def _one_connection_engine():
    return create_engine(MYSQL_URL, pool_size=1, max_overflow=0, pool_pre_ping=False)


def test_an_expiring_lock_returns_its_connection_to_the_pool_with_the_servers_timeout(db):
    engine = _one_connection_engine()
    try:
        with engine.connect() as conn:
            default_timeout = conn.execute(text("SELECT @@GLOBAL.wait_timeout")).scalar()
        with advisory_lock(engine, NAME, expire_after=3) as held:
            assert held
            with db.connect() as other:
                holder = other.execute(text("SELECT IS_USED_LOCK(:n)"), {"n": NAME}).scalar()
        with engine.connect() as conn:
            # the same server connection, with the lock gone and the short timeout undone
            assert conn.execute(text("SELECT CONNECTION_ID()")).scalar() == holder
            assert conn.execute(text("SELECT IS_USED_LOCK(:n)"), {"n": NAME}).scalar() is None
            assert conn.execute(text("SELECT @@SESSION.wait_timeout")).scalar() == default_timeout
    finally:
        engine.dispose()


def test_a_lock_connection_the_server_closed_is_dropped_and_the_next_use_works(db):
    engine = _one_connection_engine()
    try:
        with advisory_lock(engine, NAME, expire_after=3) as held:
            assert held
            with db.connect() as other:
                holder = other.execute(text("SELECT IS_USED_LOCK(:n)"), {"n": NAME}).scalar()
                # as if the holder froze past its timeout: the server ends its connection
                other.execute(text(f"KILL CONNECTION {int(holder)}"))
        with advisory_lock(engine, NAME, expire_after=3) as held_again:
            assert held_again
            with db.connect() as other:
                again = other.execute(text("SELECT IS_USED_LOCK(:n)"), {"n": NAME}).scalar()
            assert again != holder
    finally:
        engine.dispose()
