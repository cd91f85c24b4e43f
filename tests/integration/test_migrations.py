"""`orchestrator db upgrade` on MySQL and SQLite: idempotent, and the schema it makes is the models'."""

from __future__ import annotations

import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from orchestrator.db import make_engine
from orchestrator.models import Base
from tests.support.fixtures import MYSQL_URL
from tests.support.services import process_env, run_quietly

TABLES = {
    "workflow_definitions",
    "workflow_instances",
    "node_executions",
    "node_checkpoints",
    "execution_logs",
    "workers",
    "alembic_version",
}


def _upgrade(url: str) -> None:
    result = run_quietly(
        [sys.executable, "-m", "orchestrator.cli", "db", "upgrade"], process_env(ORCH_DATABASE_URL=url)
    )
    assert result.returncode == 0, result.stderr


def _diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


def _fresh_mysql(name: str) -> str:
    url = make_url(MYSQL_URL)
    server = create_engine(url.set(database=""), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        conn.execute(text(f"CREATE DATABASE `{name}`"))
    server.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def test_db_upgrade_is_idempotent_on_mysql_and_matches_the_models(mysql_engine):
    url = _fresh_mysql(make_url(MYSQL_URL).database + "_migrations")
    _upgrade(url)
    _upgrade(url)  # a second run finds nothing to do and does not fail
    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()
    assert _diff(url) == []


def test_db_upgrade_is_idempotent_on_sqlite_and_matches_the_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'orchestrator.sqlite3'}"
    _upgrade(url)
    _upgrade(url)
    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()
    assert _diff(url) == []
