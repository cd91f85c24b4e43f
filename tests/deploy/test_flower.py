"""Flower, as `celery -A workers.app flower` runs it, shows every node task with its instance, node and
executor: the worker sends task events (ORCH_TASK_EVENTS) and `run_node` messages carry a readable
name and argument summary. Each node attempt's task ends in the attempt's own state (a failed one is
FAILURE with its error, a retried or handed-back one RETRY), and the recovery sweep stays out of the
task list."""

from __future__ import annotations

from typing import Any

import requests
from sqlalchemy import select

from orchestrator.models import CheckpointRow
from orchestrator_cli import dev_processes
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
    """Flower as `make run` starts it (its command line and environment), on a free port and the
    workers' broker; returns its base URL once it sees a worker."""
    port = free_port()
    env = dev_processes.flower_env(processes.env)
    flower = Process(
        "flower", dev_processes.flower_argv(port), env, processes.tmp_path / "flower.log"
    ).start()
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


OUTCOMES = {
    "name": "flower-outcomes",
    "version": "1.0.0",
    "nodes": [
        {"id": "fetch", "type": "task", "executor": "noop", "config": {"token": "never-shown-in-flower"}},
        {
            "id": "flaky",
            "type": "task",
            "executor": "tests.flaky",
            "dependsOn": ["fetch"],
            "retries": 1,
            "retryDelay": 10,
            "config": {"failures": 1},
        },
        {
            "id": "setup-permissions",
            "type": "task",
            "executor": "tests.fatal",
            "dependsOn": ["flaky"],
            "config": {"message": "no such role: admin"},
        },
    ],
}
NAP = {
    "name": "flower-nap",
    "version": "1.0.0",
    "nodes": [{"id": "nap", "type": "task", "executor": "sleep", "config": {"seconds": 60}}],
}


def _flower_tasks(flower: str) -> dict[str, dict[str, Any]]:
    return requests.get(f"{flower}/api/tasks", timeout=5).json()  # type: ignore[no-any-return]


def _in_states(flower: str, expected: dict[str, str]) -> dict[str, dict[str, Any]] | None:
    tasks = _flower_tasks(flower)
    if all(tasks.get(task_id, {}).get("state") == state for task_id, state in expected.items()):
        return tasks
    return None


def test_flower_shows_each_attempt_in_its_real_state_and_no_sweeps(db, live_api, processes) -> None:
    worker = processes.worker("w1", ORCH_TASK_EVENTS="1")
    processes.beat()  # the recovery sweep runs every second (tests' timings)
    flower = start_flower(processes)
    for body in (OUTCOMES, NAP):
        assert live_api.post("/api/v1/definitions", body).status_code == 201
    failing = live_api.post("/api/v1/instances", {"workflow": "flower-outcomes"}).json()["id"]
    assert live_api.wait_status(failing)["status"] == "failed"

    expected = {
        f"{failing}:fetch:1": "SUCCESS",
        f"{failing}:flaky:1": "RETRY",
        f"{failing}:flaky:2": "SUCCESS",
        f"{failing}:setup-permissions:1": "FAILURE",
    }
    tasks = wait_for(lambda: _in_states(flower, expected), 20, f"flower to show {expected}", interval=0.2)
    failed = tasks[f"{failing}:setup-permissions:1"]
    assert failed["name"] == "flower-outcomes/setup-permissions [tests.fatal]", failed
    assert "EXECUTOR_ERROR" in failed["exception"] and "no such role: admin" in failed["exception"], failed
    retried = tasks[f"{failing}:flaky:1"]
    assert retried["name"] == "flower-outcomes/flaky [tests.flaky]", retried
    assert "planned failure 1" in retried["exception"], retried
    done = tasks[f"{failing}:fetch:1"]
    assert done["name"] == "flower-outcomes/fetch [noop]", done
    # the result is how the attempt ended, never the node's output
    assert "'status': 'completed'" in done["result"] and "'attempt': 1" in done["result"], done
    assert "durationMs" in done["result"] and "never-shown-in-flower" not in done["result"], done

    # a pause hands a running node back: RETRY, not SUCCESS, and not a failure
    napping = live_api.post("/api/v1/instances", {"workflow": "flower-nap"}).json()["id"]
    wait_for(lambda: _has_checkpoint(db, napping, 1), 60, "the sleep's first checkpoint", interval=0.1)
    assert live_api.post(f"/api/v1/instances/{napping}/pause").status_code == 200
    tasks = wait_for(lambda: _in_states(flower, {f"{napping}:nap:1": "RETRY"}), 30, "the hand-back in flower")
    assert "NodeHandedBack" in tasks[f"{napping}:nap:1"]["exception"], tasks[f"{napping}:nap:1"]
    # resumed, then cancelled while it runs: that attempt's result is dropped, so it is REVOKED
    assert live_api.post(f"/api/v1/instances/{napping}/resume").status_code == 200
    wait_for(lambda: _has_checkpoint(db, napping, 2), 60, "the second attempt's checkpoint", interval=0.1)
    assert live_api.post(f"/api/v1/instances/{napping}/cancel").status_code == 200
    wait_for(lambda: _in_states(flower, {f"{napping}:nap:2": "REVOKED"}), 30, "the fenced attempt in flower")

    # sweeps ran all along (the worker says so), and flower never heard of one
    wait_for(lambda: _sweeps_done(worker.log_text()) >= 3, 30, "three sweeps on w1")
    names = {task.get("name") for task in _flower_tasks(flower).values()}
    assert "orchestrator.schedule" in names, names  # the tasks of instances are listed
    assert not names & {"orchestrator.recover", "orchestrator.prune"}, names


def _sweeps_done(worker_log: str) -> int:
    return sum("orchestrator.recover[" in line and "succeeded" in line for line in worker_log.splitlines())


def _has_checkpoint(engine: Any, instance_id: str, attempt: int) -> bool:
    statement = select(CheckpointRow.id).where(
        CheckpointRow.instance_id == instance_id, CheckpointRow.attempt == attempt
    )
    with engine.connect() as conn:
        return conn.execute(statement).first() is not None
