"""No ROLLBACK round trip when a connection goes back to the pool clean.

SQLAlchemy's pool rolls a returned connection back unless the `Connection` itself just rolled back
an open transaction. After `engine.begin()` commits (every write on the node path) that is one more
round trip to MySQL for nothing: the commit already ended the transaction. This tracks, per pooled
connection, whether it is known clean (its last transaction ended in a commit or a rollback that
succeeded, and nothing began since) and rolls back on return only when it is not. Anything that
went wrong on the connection (an error on a statement, a commit or a rollback) makes it unknown,
so it is rolled back as before, and a connection used outside a `Connection` (a raw DBAPI
connection, a garbage-collected checkout) was never marked clean.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.pool import PoolResetState

_CLEAN = "orch_clean"


def roll_back_only_when_needed(engine: Engine) -> None:
    """For an engine made with `pool_reset_on_return=None`: the pool's reset, done here instead."""

    @event.listens_for(engine, "begin")
    def _began(conn: Connection) -> None:
        _mark(conn, clean=False)

    @event.listens_for(engine, "commit")
    def _committing(conn: Connection) -> None:
        # the event comes before the DBAPI commit; one that fails goes through handle_error below
        _mark(conn, clean=True)

    @event.listens_for(engine, "rollback")
    def _rolling_back(conn: Connection) -> None:
        _mark(conn, clean=True)

    @event.listens_for(engine, "handle_error")
    def _failed(context: ExceptionContext) -> None:
        if context.connection is not None and not context.is_disconnect:
            _mark(context.connection, clean=False)

    @event.listens_for(engine, "reset")
    def _reset(dbapi_conn: Any, record: Any, state: PoolResetState) -> None:
        clean = record.info.pop(_CLEAN, False)
        if state.transaction_was_reset or clean or not state.asyncio_safe:
            return
        dbapi_conn.rollback()


def _mark(conn: Connection, *, clean: bool) -> None:
    # an invalidated connection (lost) is never pooled again, and its `info` is out of reach
    if not conn.closed and not conn.invalidated:
        conn.info[_CLEAN] = clean
