"""Engines and transactions for MySQL/MariaDB (production) and SQLite (the embedded profile)."""

from __future__ import annotations

import functools
import os
import random
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError

from orchestrator.pool_reset import roll_back_only_when_needed

P = ParamSpec("P")
T = TypeVar("T")

# MySQL error numbers worth one more try: deadlock (1213), lock wait timeout (1205), server gone /
# connection lost (2006, 2013, 2014, 2055), and MariaDB's disconnect of a client idle past
# wait_timeout (4031, sent before it closes the socket; MySQL 8.0.24+ sends it too). PyMySQL and
# mysqlclient both raise them as `(number, message)` args, client-side (2xxx) numbers included.
_RETRYABLE_MYSQL = {1213, 1205, 2006, 2013, 2014, 2055, 4031}
# A pooled connection idle longer than this is pinged before use; one used more recently is not.
PING_AFTER_IDLE_S = 1.0


def make_engine(url: str, pool_size: int = 5) -> Engine:
    """An engine with the settings this product relies on.

    MySQL runs at READ COMMITTED: guarded UPDATEs read the latest committed row anyway, and it avoids
    the gap locks that make concurrent fan-in transactions deadlock under REPEATABLE READ.

    The pool hands out the most recently returned connection first (LIFO) and pings only connections
    idle for over `PING_AFTER_IDLE_S`: `pool_pre_ping` would add a round trip to every transaction,
    two per node. A connection that breaks within that second fails its statement instead, which
    `retrying` re-runs on a fresh connection (the node path is wrapped in it).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    engine = _mysql_engine(url, pool_size, isolation_level="READ COMMITTED", pool_reset_on_return=None)
    roll_back_only_when_needed(engine)  # the pool's reset, without a ROLLBACK after each commit
    # a sibling for single statements that commit as they run (see `autocommit`), made with the
    # engine so that it is forked, reset and disposed with it
    _AUTOCOMMIT[engine] = _mysql_engine(
        url,
        pool_size,
        isolation_level="AUTOCOMMIT",
        # nothing to roll back: no ROLLBACK round trip when a connection is closed or checked in
        skip_autocommit_rollback=True,
        pool_reset_on_return=None,
    )
    created_in = os.getpid()

    def _disposed(disposed: Engine) -> None:
        # in a forked child the pool's connections belong to the parent (workers.resources disposes
        # the inherited engine with close=False): leave their sockets alone there, close them here
        _AUTOCOMMIT[disposed].dispose(close=os.getpid() == created_in)

    event.listen(engine, "engine_disposed", _disposed)
    return engine


def _mysql_engine(url: str, pool_size: int, **options: Any) -> Engine:
    connect_args: dict[str, Any] = {"connect_timeout": 10}
    if "charset" not in make_url(url).query:
        # both drivers' own default differs by version (and mysqlclient's follows the client
        # library's configuration): 4-byte UTF-8 (emoji in outputs) is the one that stores any text
        connect_args["charset"] = "utf8mb4"
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_use_lifo=True,
        pool_recycle=1800,
        connect_args=connect_args,
        # a statement's parameters (outputs, callback URLs with their credentials) stay out of
        # error messages and logs; the SQL text alone tells an operator which statement failed
        hide_parameters=True,
        **options,
    )
    _ping_when_idle(engine)
    return engine


_AUTOCOMMIT: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


@contextmanager
def autocommit(engine: Engine) -> Iterator[Connection]:
    """A connection of `engine`'s database on which each statement commits as it runs.

    For a transaction of one guarded UPDATE (a claim): the statement and its commit are one round
    trip instead of two. Engines not made by `make_engine`, and SQLite (whose transactions must
    start with BEGIN IMMEDIATE), get one short transaction instead.
    """
    sibling = _AUTOCOMMIT.get(engine)
    if sibling is None:
        with engine.begin() as conn:
            yield conn
    else:
        with sibling.connect() as conn:
            yield conn


def _ping_when_idle(engine: Engine) -> None:
    # the dialect knows its driver's ping: PyMySQL's `ping(reconnect=False)`, mysqlclient's `ping()`
    # (which never reconnects by itself since 2.x); a reconnecting ping would lose the session settings
    dialect = engine.dialect

    @event.listens_for(engine, "connect")
    def _connected(dbapi_conn: Any, record: Any) -> None:
        record.info["orch_used_at"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_conn: Any, record: Any) -> None:
        record.info["orch_used_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        used = record.info.get("orch_used_at")
        if used is not None and time.monotonic() - used < PING_AFTER_IDLE_S:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool discards this connection and checks out a fresh one
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # take transaction control from pysqlite so BEGIN IMMEDIATE below is what starts a transaction
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA busy_timeout=30000")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # API, worker and beat are separate processes on one file: take the write lock up front
        # instead of failing with "database is locked" when a read transaction later writes.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, OperationalError | DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in _RETRYABLE_MYSQL
    return "database is locked" in str(orig)


def retrying(attempts: int = 5) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Re-run a whole transaction function on a deadlock or a lost connection.

    Only wrap functions that open their own transaction: a retry must start from nothing.
    """

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            for attempt in range(1, attempts + 1):
                try:
                    return fn(*args, **kwargs)
                except (OperationalError, DBAPIError) as exc:
                    if attempt == attempts or not is_retryable(exc):
                        raise
                    time.sleep(min(0.5, 0.01 * 2**attempt) * random.random())
            raise AssertionError("unreachable")

        return wrapper

    return decorate
