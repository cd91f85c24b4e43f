"""A pooled connection goes back without a ROLLBACK after a commit, and is still rolled back when it
may hold an open transaction (used raw, or after an error)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from orchestrator.db import make_engine
from tests.support.fixtures import MYSQL_URL


@pytest.fixture
def engine(db):
    made = make_engine(MYSQL_URL, pool_size=1)
    with made.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS pool_reset_probe (n INT)"))
        conn.execute(text("DELETE FROM pool_reset_probe"))
    yield made
    with made.begin() as conn:
        conn.execute(text("DROP TABLE pool_reset_probe"))
    made.dispose()


def _rollbacks(engine) -> int:
    with engine.connect() as conn:
        row = conn.execute(text("SHOW SESSION STATUS LIKE 'Com_rollback'")).one()
        return int(row[1])


def _rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT COUNT(*) FROM pool_reset_probe")).scalar_one()


def test_a_committed_transaction_returns_its_connection_without_a_rollback(engine):
    before = _rollbacks(engine)  # itself one rollback (its read's), done by the Connection
    for n in range(5):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO pool_reset_probe VALUES (:n)"), {"n": n})
    # only the first probe's own read was rolled back in between: none after the five commits
    assert _rollbacks(engine) == before + 1
    assert _rows(engine) == 5


def test_a_connection_used_raw_is_still_rolled_back_on_return(engine):
    raw = engine.raw_connection()
    cursor = raw.cursor()
    cursor.execute("INSERT INTO pool_reset_probe VALUES (1)")
    cursor.close()
    raw.close()  # back to the pool with its transaction open: the insert must not survive
    assert _rows(engine) == 0


def test_a_failed_statement_leaves_no_transaction_behind(engine):
    with pytest.raises(DBAPIError), engine.connect() as conn:
        conn.execute(text("INSERT INTO pool_reset_probe VALUES (7)"))
        conn.commit()
        conn.execute(text("INSERT INTO pool_reset_probe VALUES (8)"))
        conn.execute(text("SELECT * FROM no_such_table"))
    assert _rows(engine) == 1
