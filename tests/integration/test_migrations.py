"""`orchestrator db upgrade` on MySQL and SQLite: idempotent, and the schema it makes is the models'."""

from __future__ import annotations

import json
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
    "schedules",
    "alembic_version",
}


def _upgrade(url: str) -> None:
    result = run_quietly(
        [sys.executable, "-m", "orchestrator_cli", "db", "upgrade"], process_env(ORCH_DATABASE_URL=url)
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


def test_0002_recounts_the_unfinished_sinks_of_instances_that_have_not_ended(mysql_engine):
    """Only a sink's completion counts an instance down since 0002: an instance left running by the
    old version must get its count of unfinished sinks, or it would never finish (and back again)."""
    from alembic import command

    from orchestrator.migrate import alembic_config, upgrade

    url = _fresh_mysql(make_url(MYSQL_URL).database + "_migration_0002")
    upgrade(url, "0001")
    body = {
        "name": "diamond",
        "version": "1.0.0",
        "nodes": [
            {"id": "a", "type": "task", "executor": "noop"},
            {"id": "b", "type": "task", "executor": "noop", "dependsOn": ["a"]},
            {"id": "c", "type": "task", "executor": "noop", "dependsOn": ["a"]},
            {"id": "d", "type": "task", "executor": "noop", "dependsOn": ["b"]},
        ],
    }
    engine = create_engine(url)
    now = "2026-11-29 10:00:00"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO workflow_definitions (id, name, version, body, content_hash, created_at)"
                " VALUES (1, 'diamond', '1.0.0', :body, 'x', :now)"
            ),
            {"body": json.dumps(body), "now": now},
        )
        for instance_id, status, done in (
            ("running-1", "running", {"a", "c"}),
            ("ended-1", "completed", set("abcd")),
        ):
            conn.execute(
                text(
                    "INSERT INTO workflow_instances (id, definition_id, workflow_name, workflow_version,"
                    " status, input, priority, tags, unfinished_nodes, total_nodes, created_at, updated_at)"
                    " VALUES (:id, 1, 'diamond', '1.0.0', :status, '{}', 'normal', '{}', :left, 4,"
                    " :now, :now)"
                ),
                {"id": instance_id, "status": status, "left": 4 - len(done), "now": now},
            )
            for node in "abcd":
                conn.execute(
                    text(
                        "INSERT INTO node_executions (instance_id, node_id, queue, status, attempt,"
                        " pending_deps, failures, handbacks, updated_at)"
                        " VALUES (:i, :n, 'default', :s, 1, 0, 0, 0, :now)"
                    ),
                    {
                        "i": instance_id,
                        "n": node,
                        "s": "completed" if node in done else "pending",
                        "now": now,
                    },
                )

    def counts(column: str) -> dict[str, int]:
        with engine.connect() as conn:
            return dict(conn.execute(text(f"SELECT id, {column} FROM workflow_instances")).all())

    upgrade(url)
    # sinks are c and d; c is done, d is not. An ended instance keeps what it had.
    assert counts("unfinished_sinks") == {"running-1": 1, "ended-1": 0}
    command.downgrade(alembic_config(url), "0001")
    assert counts("unfinished_nodes") == {"running-1": 2, "ended-1": 0}
    engine.dispose()


def test_0005_types_the_nodes_of_instances_running_on_the_old_shape(mysql_engine):
    """Before 0005 a row's type was read off its executor (a sub-workflow node has none): an instance
    left running by the old version keeps its task and sub-workflow nodes, typed (and back again)."""
    from alembic import command

    from orchestrator.migrate import alembic_config, upgrade

    url = _fresh_mysql(make_url(MYSQL_URL).database + "_migration_0005")
    upgrade(url, "0004")
    now = "2026-12-01 10:00:00"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO workflow_definitions (id, name, version, body, content_hash, created_at)"
                " VALUES (1, 'parent', '1.0.0', '{}', 'x', :now)"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO workflow_instances (id, definition_id, workflow_name, workflow_version,"
                " status, input, priority, tags, unfinished_sinks, total_nodes, created_at, updated_at)"
                " VALUES ('running-1', 1, 'parent', '1.0.0', 'running', '{}', 'normal', '{}', 1, 2,"
                " :now, :now)"
            ),
            {"now": now},
        )
        for node, executor, status in (("fetch", "noop", "completed"), ("child", None, "running")):
            conn.execute(
                text(
                    "INSERT INTO node_executions (instance_id, node_id, executor, queue, status, attempt,"
                    " pending_deps, failures, handbacks, updated_at)"
                    " VALUES ('running-1', :n, :e, 'default', :s, 1, 0, 0, 0, :now)"
                ),
                {"n": node, "e": executor, "s": status, "now": now},
            )

    def types() -> dict[str, str]:
        with engine.connect() as conn:
            return dict(conn.execute(text("SELECT node_id, type FROM node_executions")).all())

    upgrade(url)
    assert types() == {"fetch": "task", "child": "subworkflow"}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM instance_signals")).scalar() == 0
        assert conn.execute(text("SELECT start_at FROM workflow_instances")).scalar() is None
    command.downgrade(alembic_config(url), "0004")
    with engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("node_executions")}
    assert "type" not in columns and "wake_at" not in columns
    engine.dispose()
