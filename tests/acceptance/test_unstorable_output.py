"""An output the store cannot hold, on a real worker and MySQL/MariaDB: the node fails with a clear
code, and `/nodes` shows no SQL text or driver error."""

from __future__ import annotations

from tests.acceptance.helpers import define, start
from tests.support import output_executors
from tests.support.output_executors import WITH_OUTPUT_EXECUTORS


def test_an_output_nested_150_deep_fails_its_node_with_output_not_storable(db, live_api, processes):
    assert output_executors.deep_output  # registered here too: the API checks executor names
    processes.worker("w1", ORCH_EXECUTOR_MODULES=WITH_OUTPUT_EXECUTORS)
    node = {"id": "deep", "type": "task", "executor": "tests.deep_output", "config": {"depth": 150}}
    define(live_api, {"name": "deep-output", "version": "1.0.0", "nodes": [{**node, "retries": 2}]})
    instance_id = start(live_api, "deep-output")
    assert live_api.wait_status(instance_id)["status"] == "failed"

    response = live_api.get(f"/api/v1/instances/{instance_id}/nodes")
    (deep,) = response.json()["nodes"]
    assert deep["status"] == "failed" and deep["attempt"] == 1  # another attempt would fail the same
    assert deep["error"]["code"] == "OUTPUT_NOT_STORABLE" and "levels deep" in deep["error"]["message"]
    shown = response.text + live_api.get(f"/api/v1/instances/{instance_id}").text
    for leaked in ("[SQL", "UPDATE nodes", "parameters", "pymysql", "OperationalError", "IntegrityError"):
        assert leaked not in shown, leaked
