"""The database errors `retrying` re-runs, as each MySQL driver raises them from a real server: a
killed connection, a deadlock, an idle connection the server closed; and the pool's ping."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, insert, text, update
from sqlalchemy.exc import DBAPIError

from orchestrator import db as orch_db
from orchestrator.db import is_retryable, retrying
from tests.support.executors import effects
from tests.support.services import wait_for

pytestmark = pytest.mark.both_drivers


def _connection_id(conn: Connection) -> int:
    return int(conn.execute(text("SELECT CONNECTION_ID()")).scalar_one())


def _gone(db: Engine, connection_id: int) -> bool:
    with db.connect() as conn:
        found = conn.execute(
            text("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = :id"), {"id": connection_id}
        ).scalar_one()
    return found == 0


def _kill(db: Engine, connection_id: int) -> None:
    """KILL CONNECTION from another session, and wait until the server has let it go."""
    with db.connect() as conn:
        conn.execute(text("KILL CONNECTION :id"), {"id": connection_id})
    wait_for(lambda: _gone(db, connection_id), 10, f"connection {connection_id} to be gone")


def _code(exc: DBAPIError) -> Any:
    args = getattr(exc.orig, "args", ())
    return args[0] if args else None


def test_the_engine_speaks_utf8mb4(driver_engine: Engine, database_url: str) -> None:
    assert driver_engine.dialect.driver == database_url.split("+", 1)[1].split(":", 1)[0]
    text_value = "snow ☃ and a 4-byte one 🎉"
    with driver_engine.begin() as conn:
        assert conn.execute(text("SELECT @@character_set_connection")).scalar() == "utf8mb4"
        conn.execute(insert(effects).values(kind="utf8", data=text_value))
    with driver_engine.connect() as conn:
        stored = conn.execute(text("SELECT data FROM test_effects WHERE kind = 'utf8'")).scalar()
    assert stored == text_value


def test_a_killed_pooled_connection_is_retried_on_a_fresh_one(
    db: Engine, driver_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no ping at checkout, however slow the machine: the dead connection's statement must fail
    monkeypatch.setattr(orch_db, "PING_AFTER_IDLE_S", float("inf"))
    with driver_engine.connect() as conn:
        killed = _connection_id(conn)
    _kill(db, killed)

    with pytest.raises(DBAPIError) as caught, driver_engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert is_retryable(caught.value), (type(caught.value.orig), caught.value.orig)

    with driver_engine.connect() as conn:
        again = _connection_id(conn)
    _kill(db, again)
    attempts: list[int] = []

    @retrying()
    def read() -> int:
        attempts.append(1)
        with driver_engine.connect() as conn:
            return _connection_id(conn)

    assert read() not in (killed, again)
    assert len(attempts) == 2


def test_an_idle_pooled_connection_is_pinged_and_replaced(
    db: Engine, driver_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orch_db, "PING_AFTER_IDLE_S", 0.0)  # every checkout pings (the dialect's ping)
    with driver_engine.connect() as conn:
        killed = _connection_id(conn)
    _kill(db, killed)
    with driver_engine.connect() as conn:  # the ping fails, the pool connects anew: no error here
        assert _connection_id(conn) != killed


def test_a_connection_the_server_closed_for_idleness_is_retryable(db: Engine, driver_engine: Engine) -> None:
    """MariaDB sends error 4031 to a client it disconnects after wait_timeout (so does MySQL 8.0.24+);
    the driver raises it, or a lost connection, at the next statement."""
    with driver_engine.connect() as conn:
        conn.execute(text("SET SESSION wait_timeout = 1"))
        idle = _connection_id(conn)
        wait_for(lambda: _gone(db, idle), 15, f"the server to close idle connection {idle}")
        with pytest.raises(DBAPIError) as caught:
            conn.execute(text("SELECT 1"))
    assert _code(caught.value) in (4031, 2006, 2013), caught.value.orig
    assert is_retryable(caught.value)


def _running_update(db: Engine, connection_id: int) -> bool:
    """Whether the server runs an UPDATE for `connection_id`: here one that waits for a row lock."""
    with db.connect() as conn:
        info = conn.execute(
            text("SELECT INFO FROM information_schema.PROCESSLIST WHERE ID = :id"), {"id": connection_id}
        ).scalar()
    return str(info or "").lstrip().upper().startswith("UPDATE")


def test_a_deadlock_is_retryable(db: Engine, driver_engine: Engine) -> None:
    with db.begin() as conn:
        first = conn.execute(insert(effects).values(kind="row", data="a")).inserted_primary_key[0]
        second = conn.execute(insert(effects).values(kind="row", data="b")).inserted_primary_key[0]
    errors: list[BaseException] = []

    def touch(conn: Connection, row: int) -> None:
        conn.execute(update(effects).where(effects.c.id == row).values(data="x"))

    with driver_engine.connect() as one, driver_engine.connect() as two:
        for conn in (one, two):
            conn.execute(text("SET SESSION innodb_lock_wait_timeout = 20"))
        one_id = _connection_id(one)  # both are in a transaction already (autobegin)
        touch(one, first)
        touch(two, second)

        def one_waits_for_second() -> None:
            try:
                touch(one, second)
            except BaseException as exc:
                errors.append(exc)
            finally:
                one.rollback()

        waiter = threading.Thread(target=one_waits_for_second)
        waiter.start()
        try:
            wait_for(lambda: _running_update(db, one_id), 15, "the first transaction to wait for a lock")
            try:
                touch(two, first)  # closes the cycle: InnoDB picks one of the two as the victim
            except DBAPIError as exc:
                errors.append(exc)
            two.rollback()
        finally:
            waiter.join(30)
    assert len(errors) == 1, errors
    victim = errors[0]
    assert isinstance(victim, DBAPIError) and _code(victim) == 1213, victim
    assert is_retryable(victim)
