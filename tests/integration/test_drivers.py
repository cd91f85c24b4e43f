"""A workflow end to end with the API and a real worker on each MySQL driver (ORCH_DATABASE_URL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from orchestrator.models import NodeRow

DIAMOND = {
    "name": "drivers-diamond",
    "version": "1.0.0",
    "inputs": {"greeting": {"type": "string", "required": True}},
    "nodes": [
        {"id": "start", "type": "task", "executor": "tests.driver", "config": {"say": "${input.greeting}"}},
        {"id": "left", "type": "task", "executor": "tests.count", "dependsOn": ["start"], "config": {}},
        {"id": "right", "type": "task", "executor": "noop", "dependsOn": ["start"], "config": {"n": 1}},
        {
            "id": "join",
            "type": "task",
            "executor": "tests.driver",
            "dependsOn": ["left", "right"],
            "config": {"heard": "${nodes.start.output.say}"},
        },
    ],
}


@pytest.mark.both_drivers
def test_a_fan_out_and_in_completes_with_the_worker_on_each_driver(db, live_api, processes, database_url):
    driver = database_url.split("+", 1)[1].split(":", 1)[0]
    processes.worker("w1")
    assert processes.env["ORCH_DATABASE_URL"] == database_url
    created = live_api.post("/api/v1/definitions", DIAMOND)
    assert created.status_code == 201, created.text
    greeting = "hello ☃ 🎉"  # 4-byte UTF-8 through the worker's driver and back
    response = live_api.post(
        "/api/v1/instances", {"workflow": "drivers-diamond", "input": {"greeting": greeting}}
    )
    assert response.status_code == 201, response.text
    instance_id = response.json()["id"]

    status = live_api.wait_status(instance_id)

    assert status["status"] == "completed", status
    with db.connect() as conn:
        outputs = dict(
            conn.execute(
                select(NodeRow.node_id, NodeRow.output).where(NodeRow.instance_id == instance_id)
            ).all()
        )
    assert outputs["start"] == {"driver": driver, "charset": "utf8mb4", "say": greeting}
    assert outputs["join"] == {"driver": driver, "charset": "utf8mb4", "heard": greeting}
    assert live_api.app.extensions["orchestrator.engine"].dialect.driver == driver
