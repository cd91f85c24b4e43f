"""Flower, as `celery -A workers.app flower` runs it, shows every node task with its instance, node and
executor: the worker sends task events (ORCH_TASK_EVENTS) and `run_node` messages carry a readable
name and argument summary."""

from __future__ import annotations

import sys
from typing import Any

import requests

from tests.support.services import Process, free_port, wait_for

FANOUT = {
    "name": "flower-fanout",
    "version": "1.0.0",
    "nodes": [
        {"id": "extract", "type": "task", "executor": "noop"},
        {"id": "load-a", "type": "task", "executor": "tests.count", "dependsOn": ["extract"]},
        {"id": "load-b", "type": "task", "executor": "tests.count", "dependsOn": ["extract"]},
    ],
}


def start_flower(processes: Any) -> str:
    """Flower on a free port with the workers' environment; returns its base URL once it sees a worker."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "flower",
        f"--port={port}",
        "--address=127.0.0.1",
    ]
    env = {**processes.env, "FLOWER_UNAUTHENTICATED_API": "true"}
    flower = Process("flower", argv, env, processes.tmp_path / "flower.log").start()
    processes.started.append(flower)  # stopped with the workers at teardown
    url = f"http://127.0.0.1:{port}"

    def sees_a_worker() -> bool:
        assert flower.alive(), f"flower exited:\n{flower.log_text()[-3000:]}"
        try:
            # Flower's own metrics come from the event stream: a worker online means events arrive
            body = requests.get(f"{url}/metrics", timeout=2).text
        except requests.RequestException:
            return False
        return any(
            line.startswith("flower_worker_online{") and line.endswith(" 1.0") for line in body.splitlines()
        )

    wait_for(sees_a_worker, 30, "flower to receive the worker's events", interval=0.2)
    return url


def test_flower_lists_every_node_task_with_instance_node_and_executor(db, live_api, processes) -> None:
    processes.worker("w1", ORCH_TASK_EVENTS="1")
    flower = start_flower(processes)
    assert live_api.post("/api/v1/definitions", FANOUT).status_code == 201
    instance_id = live_api.post("/api/v1/instances", {"workflow": "flower-fanout"}).json()["id"]
    assert live_api.wait_status(instance_id)["status"] == "completed"
    expected = {node["id"]: node["executor"] for node in FANOUT["nodes"]}

    def node_tasks() -> dict[str, dict[str, Any]] | None:
        tasks = requests.get(f"{flower}/api/tasks", timeout=5).json()
        mine = {
            task_id: task
            for task_id, task in tasks.items()
            if task_id.startswith(f"{instance_id}:") and task.get("state") == "SUCCESS"
        }
        return mine if len(mine) == len(expected) else None

    tasks = wait_for(node_tasks, 20, "flower to list every node task as succeeded", interval=0.2)
    for node_id, executor in expected.items():
        task = tasks[f"{instance_id}:{node_id}:1"]
        assert task["name"] == f"flower-fanout/{node_id} [{executor}]", task
        assert task["args"] == f"instance={instance_id} node={node_id} attempt=1", task
        assert task["worker"].startswith("w1@")
