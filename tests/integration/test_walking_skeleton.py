"""The whole path on MySQL, Redis and a real worker: definition -> instance -> nodes -> completed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from orchestrator.models import NodeRow

LINEAR = {
    "name": "linear-three",
    "version": "1.0.0",
    "inputs": {"greeting": {"type": "string", "required": True}},
    "nodes": [
        {"id": "first", "type": "task", "executor": "tests.count", "config": {"say": "${input.greeting}"}},
        {
            "id": "second",
            "type": "task",
            "executor": "noop",
            "dependsOn": ["first"],
            "config": {"heard": "${nodes.first.output.say}", "n": 2},
        },
        {
            "id": "third-step",
            "type": "task",
            "executor": "tests.count",
            "dependsOn": ["second"],
            "config": {"total": "${nodes.second.output.n}"},
        },
    ],
}


@pytest.mark.both_brokers
def test_linear_chain_completes_on_mysql_and_each_broker_with_a_real_worker(db, live_api, processes):
    processes.worker("w1")
    created = live_api.post("/api/v1/definitions", LINEAR)
    assert created.status_code == 201, created.text
    response = live_api.post("/api/v1/instances", {"workflow": "linear-three", "input": {"greeting": "hi"}})
    assert response.status_code == 201, response.text
    instance_id = response.json()["id"]

    status = live_api.wait_status(instance_id)

    assert status["status"] == "completed", status
    assert status["progress"] == 100
    assert status["completedNodes"] == ["first", "second", "third-step"]
    with db.connect() as conn:
        outputs = dict(
            conn.execute(
                select(NodeRow.node_id, NodeRow.output).where(NodeRow.instance_id == instance_id)
            ).all()
        )
    assert outputs["first"] == {"node": "first", "attempt": 1, "say": "hi"}
    assert outputs["second"] == {"heard": "hi", "n": 2}
    assert outputs["third-step"] == {"node": "third-step", "attempt": 1, "total": 2}
    nodes = live_api.get(f"/api/v1/instances/{instance_id}/nodes").json()["nodes"]
    assert {n["workerId"] for n in nodes} == {"w1"}
