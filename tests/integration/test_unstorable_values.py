"""Values the store cannot hold fail their node with a clear code, and no driver text (SQL, its
parameters) ends up in a node's error: nodes run in this process against the real MySQL/MariaDB."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine

from orchestrator import catalog, storable, views
from orchestrator.instances import InstanceRequest, create_instance
from tests.acceptance.helpers import nodes, run_here
from tests.support import output_executors  # noqa: F401  (registers the executors here)
from tests.support.output_executors import nested


def _run(db: Engine, executor: str, config: dict[str, Any], retries: int = 2) -> Any:
    name = f"store-{uuid.uuid4().hex[:12]}"
    node = {"id": "a", "type": "task", "executor": executor, "config": config, "retries": retries}
    catalog.save_definition(db, {"name": name, "version": "1.0.0", "nodes": [node]})
    instance_id = create_instance(db, InstanceRequest(name, start=False)).instance_id
    run_here(db, instance_id)
    return instance_id, nodes(db, instance_id)["a"]


def _no_driver_text(text: str) -> None:
    for leaked in ("[SQL", "UPDATE nodes", "INSERT INTO", "SELECT", "parameters", "pymysql", "SECRET"):
        assert leaked not in text, (leaked, text)


def test_an_output_as_deep_as_the_store_holds_is_stored_one_level_more_fails_the_node(db):
    limit = storable.max_depth(db)  # 31 on MariaDB, 100 on MySQL
    _, held = _run(db, "tests.deep_output", {"depth": limit})
    assert held.status == "completed" and held.output == nested(limit)
    instance_id, refused = _run(db, "tests.deep_output", {"depth": limit + 1})
    assert refused.status == "failed" and refused.attempt == 1  # not retried: it would fail again
    assert refused.error["code"] == "OUTPUT_NOT_STORABLE"
    assert f"more than {limit} levels" in refused.error["message"]
    _no_driver_text(json.dumps(views.nodes(db, instance_id)))


def test_a_refusal_by_the_store_itself_is_mapped_to_the_same_code(db, monkeypatch):
    limit = storable.max_depth(db)
    monkeypatch.setattr(storable, "max_depth", lambda engine: 10_000)  # the check before the write misses
    instance_id, refused = _run(db, "tests.deep_output", {"depth": limit + 1})
    assert refused.status == "failed" and refused.attempt == 1
    assert refused.error["code"] == "OUTPUT_NOT_STORABLE"
    assert "the store refused it" in refused.error["message"]
    _no_driver_text(json.dumps(views.nodes(db, instance_id)))


@pytest.mark.parametrize("kind", ["datetime", "nan"])
def test_an_output_that_is_not_plain_json_fails_the_node(db, kind):
    instance_id, refused = _run(db, "tests.not_json_output", {"kind": kind})
    assert refused.status == "failed" and refused.error["code"] == "OUTPUT_NOT_STORABLE"
    assert "not plain JSON" in refused.error["message"]
    _no_driver_text(json.dumps(views.nodes(db, instance_id)))


def test_a_checkpoint_the_store_cannot_hold_fails_the_node(db):
    instance_id, refused = _run(db, "tests.deep_checkpoint", {"depth": 150})
    assert refused.status == "failed" and refused.attempt == 1
    assert refused.error["code"] == "CHECKPOINT_NOT_STORABLE"
    _no_driver_text(json.dumps(views.nodes(db, instance_id)))


def test_an_executors_own_database_error_is_recorded_without_its_sql(db, caplog):
    instance_id, failed = _run(db, "tests.own_sql_error", {}, retries=0)
    assert failed.status == "failed" and failed.error["code"] == "STORE_ERROR"
    assert failed.error["type"] == "OperationalError" and "traceback" not in failed.error
    _no_driver_text(json.dumps(views.nodes(db, instance_id)))
    _no_driver_text(json.dumps(views.instance(db, instance_id)))
    # the operator still finds the statement in the worker's log
    assert any("missing_table" in r.getMessage() + str(r.exc_info) for r in caplog.records)
