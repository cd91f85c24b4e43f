"""Worker identity: workers started the way Celery users start them (`-n w1@%h`, no `ORCH_WORKER_ID`)
are known by their node names, so two workers on one host are two workers and neither takes the
other's nodes; `ORCH_WORKER_ID` still names a worker when it is set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.helpers import define, nodes, runs, start
from tests.support import gates
from tests.support.services import Process, expand_node_name, wait_for

pytestmark = [pytest.mark.mysql, pytest.mark.workers]

GATES = {"ORCH_EXECUTOR_MODULES": gates.MODULES}


def _held(name: str, gate: Path, node_ids: tuple[str, ...] = ("held",)) -> dict[str, Any]:
    """A workflow whose `node_ids` (in parallel) each wait at `gate`, then one more node."""
    held = [
        {"id": node_id, "type": "task", "executor": gates.EXECUTOR, "config": {"gate": str(gate)}}
        for node_id in node_ids
    ]
    after = {"id": "after", "type": "task", "executor": "noop", "dependsOn": list(node_ids)}
    return {"name": name, "version": "1.0.0", "nodes": [*held, after]}


def _workers(api: Any) -> dict[str, dict[str, Any]]:
    response = api.get("/api/v1/workers")
    assert response.status_code == 200, response.text
    return {w["id"]: w for w in response.json()["workers"]}


def _logs(api: Any, instance_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/instances/{instance_id}/logs")
    assert response.status_code == 200, response.text
    return list(response.json()["logs"])


def _wait_entered(db: Any, instance_id: str, node_id: str, times: int = 1) -> None:
    wait_for(
        lambda: runs(db, instance_id, "entered")[node_id] >= times,
        60,
        f"{node_id} to enter its gate ({times})",
    )


def _stop(process: Process) -> None:
    process.stop(grace=30)
    assert process.proc is not None and process.proc.returncode == 0, process.log_text()[-3000:]


def test_two_workers_on_one_host_are_two_workers_and_neither_takes_the_others_nodes(
    db, live_api, processes, tmp_path
):
    w1_id, w2_id = expand_node_name("w1@%h"), expand_node_name("w2@%h")
    w1 = processes.worker("w1", concurrency=1, node_name="w1@%h", **GATES)
    gate = tmp_path / "gate"
    define(live_api, _held("held-on-w1", gate))
    instance_id = start(live_api, "held-on-w1")
    _wait_entered(db, instance_id, "held")
    assert nodes(db, instance_id)["held"].worker_id == w1_id

    w2 = processes.worker("w2", concurrency=1, node_name="w2@%h", **GATES)  # registered: its start-up is over

    seen = _workers(live_api)
    assert set(seen) == {w1_id, w2_id}, seen
    assert [(seen[i]["pid"], seen[i]["status"], seen[i]["alive"]) for i in (w1_id, w2_id)] == [
        (w1.pid, "active", True),
        (w2.pid, "active", True),
    ]
    assert seen[w1_id]["runningNodes"] == [{"instanceId": instance_id, "nodeId": "held"}]
    assert seen[w2_id]["runningNodes"] == []
    row = nodes(db, instance_id)["held"]
    assert (row.status, row.attempt, row.worker_id) == ("running", 1, w1_id)
    # both heartbeat under their own ids
    wait_for(
        lambda: all(_workers(live_api)[i]["lastHeartbeat"] != seen[i]["lastHeartbeat"] for i in seen),
        30,
        "a heartbeat of each worker",
    )

    gates.open_gate(gate)
    assert live_api.wait_status(instance_id)["status"] == "completed"
    held = {n["nodeId"]: n for n in live_api.get(f"/api/v1/instances/{instance_id}/nodes").json()["nodes"]}
    assert (held["held"]["attempt"], held["held"]["workerId"]) == (1, w1_id)
    assert runs(db, instance_id, "entered")["held"] == 1 and runs(db, instance_id)["held"] == 1
    lines = _logs(live_api, instance_id)
    assert not [line for line in lines if "handed back" in line["message"]], lines
    assert {line["workerId"] for line in lines if line["nodeId"] == "held"} == {w1_id}

    _stop(w1)
    _stop(w2)
    assert {i: w["status"] for i, w in _workers(live_api).items()} == {w1_id: "gone", w2_id: "gone"}


def test_orch_worker_id_overrides_the_node_name(db, live_api, processes):
    worker = processes.worker("w3", node_name="w3@%h", ORCH_WORKER_ID="custom-id")
    define(
        live_api,
        {
            "name": "one-count",
            "version": "1.0.0",
            "nodes": [{"id": "n", "type": "task", "executor": "tests.count"}],
        },
    )
    instance_id = start(live_api, "one-count")
    assert live_api.wait_status(instance_id)["status"] == "completed"

    assert list(_workers(live_api)) == ["custom-id"]
    assert nodes(db, instance_id)["n"].worker_id == "custom-id"
    assert {line["workerId"] for line in _logs(live_api, instance_id) if line["nodeId"] == "n"} == {
        "custom-id"
    }
    _stop(worker)
    assert _workers(live_api)["custom-id"]["status"] == "gone"


def test_a_worker_restarted_with_its_node_name_takes_back_its_own_nodes_only(
    db, live_api, processes, tmp_path
):
    w1_id, w2_id = expand_node_name("w1@%h"), expand_node_name("w2@%h")
    w1 = processes.worker("w1", wait=False, concurrency=1, node_name="w1@%h", **GATES)
    w2 = processes.worker("w2", wait=False, concurrency=1, node_name="w2@%h", **GATES)
    processes.wait_all_registered({"w1": w1, "w2": w2}, by_pid=True)
    gate = tmp_path / "gate"
    define(live_api, _held("held-on-both", gate, ("a", "b")))
    instance_id = start(live_api, "held-on-both")
    _wait_entered(db, instance_id, "a")
    _wait_entered(db, instance_id, "b")
    held_by = {
        row.worker_id: node_id for node_id, row in nodes(db, instance_id).items() if row.status == "running"
    }
    assert set(held_by) == {w1_id, w2_id}, held_by  # one each: a worker of concurrency 1 holds one node
    mine, theirs = held_by[w1_id], held_by[w2_id]

    w1.kill()  # no sweep runs in this test: only the restart can take the node back
    processes.worker("w1-again", concurrency=1, node_name="w1@%h", **GATES)

    row = nodes(db, instance_id)[mine]  # queued again, or already claimed by the restarted worker
    assert row.attempt == 2 and row.status in ("queued", "running"), (row.status, row.attempt)
    handed_back = [line for line in _logs(live_api, instance_id) if "handed back" in line["message"]]
    assert [(line["nodeId"], line["details"]["reason"]) for line in handed_back] == [
        (mine, "worker restarted")
    ]
    row = nodes(db, instance_id)[theirs]
    assert (row.status, row.attempt, row.worker_id) == ("running", 1, w2_id)

    gates.open_gate(gate)
    assert live_api.wait_status(instance_id)["status"] == "completed"
    assert runs(db, instance_id, "entered") == {mine: 2, theirs: 1}
    assert runs(db, instance_id)[theirs] == 1


def test_a_second_worker_under_a_node_name_in_use_does_not_take_the_first_ones_nodes(
    db, live_api, processes, tmp_path
):
    first = processes.worker("same-1", concurrency=1, node_name="same@%h", **GATES)
    gate = tmp_path / "gate"
    define(live_api, _held("held-on-first", gate))
    instance_id = start(live_api, "held-on-first")
    _wait_entered(db, instance_id, "held")

    second = processes.worker("same-2", concurrency=1, node_name="same@%h", **GATES)

    assert f"already used by process {first.pid}" in second.log_text()
    row = nodes(db, instance_id)["held"]
    assert (row.status, row.attempt) == ("running", 1)
    gates.open_gate(gate)
    assert live_api.wait_status(instance_id)["status"] == "completed"
    assert runs(db, instance_id, "entered")["held"] == 1
    assert not [line for line in _logs(live_api, instance_id) if "handed back" in line["message"]]
