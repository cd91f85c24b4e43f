"""A node that fails for good: the nodes that can no longer run are skipped with the reason, the
status and progress say so, and a retry runs them again. Progress after a cancel. Real workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator import lifecycle
from tests.acceptance.helpers import define, effects, log_messages, nodes, runs, start
from tests.support import flaky_executors, gates
from tests.support.flaky_executors import set_flag
from tests.support.gates import open_gate
from tests.support.services import wait_for
from workers.tasks import follow_up

assert gates.EXECUTOR and flaky_executors.EXECUTOR  # registered here too: the API checks executors
FAILS = flaky_executors.EXECUTOR


def _node(node_id: str, executor: str = "tests.count", *deps: str, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "task", "executor": executor, "dependsOn": list(deps), "config": config}


def _chain(flag: Path) -> dict[str, Any]:
    return {
        "name": "fail-chain",
        "version": "1.0.0",
        "nodes": [
            _node("n1"),
            _node("n2", FAILS, "n1", flag=str(flag)),
            _node("n3", "tests.count", "n2"),
            _node("n4", "tests.count", "n3"),
        ],
    }


def _node_views(api: Any, instance_id: str) -> dict[str, dict[str, Any]]:
    response = api.get(f"/api/v1/instances/{instance_id}/nodes")
    assert response.status_code == 200, response.text
    return {n["nodeId"]: n for n in response.json()["nodes"]}


def test_a_node_failing_for_good_skips_its_successors_and_a_retry_runs_them(
    db, live_api, processes, tmp_path
):
    processes.worker("w1", ORCH_EXECUTOR_MODULES=flaky_executors.MODULES)
    flag = tmp_path / "flag"
    define(live_api, _chain(flag))
    instance_id = start(live_api, "fail-chain")

    status = live_api.wait_status(instance_id)
    assert status["status"] == "failed"
    assert (status["completedNodes"], status["failedNodes"]) == (["n1"], ["n2"])
    assert status["skippedNodes"] == ["n3", "n4"] and status["queuedNodes"] == []
    assert status["progress"] == 50  # n1 and n2 finished; n3 and n4 never ran
    views = _node_views(live_api, instance_id)
    for node_id in ("n3", "n4"):
        assert views[node_id]["status"] == "skipped"
        assert views[node_id]["skipReason"] == "upstream failed"
        assert views[node_id]["error"]["code"] == "UPSTREAM_FAILED"
        assert views[node_id]["error"]["failedNode"] == "n2"
        assert log_messages(db, instance_id, node_id) == ["node skipped: upstream failed (node n2 failed)"]
    assert runs(db, instance_id) == {"n1": 1, "n2": 1}

    set_flag(flag)
    follow_up(lifecycle.retry(db, instance_id))
    status = live_api.wait_status(instance_id, statuses=("completed", "failed"))
    assert status["status"] == "completed", status
    assert (status["progress"], status["skippedNodes"]) == (100, [])
    assert runs(db, instance_id) == {"n1": 1, "n2": 2, "n3": 1, "n4": 1}  # n1 kept its output
    views = _node_views(live_api, instance_id)
    assert all(v["error"] is None and v["skipReason"] is None for v in views.values())


def test_a_join_with_a_failed_branch_is_skipped_and_runs_after_a_retry(db, live_api, processes, tmp_path):
    """a -> (b, c) -> d, where b fails for good while c is still running: d can no longer run and is
    skipped; c ends on its own afterwards (completed, in a failed instance); the retry runs b and d."""
    processes.worker("w1", ORCH_EXECUTOR_MODULES=flaky_executors.MODULES)
    flag, b_gate, c_gate = tmp_path / "flag", tmp_path / "b-gate", tmp_path / "c-gate"
    define(
        live_api,
        {
            "name": "fail-diamond",
            "version": "1.0.0",
            "nodes": [
                _node("a"),
                _node("b", FAILS, "a", flag=str(flag), gate=str(b_gate)),
                _node("c", gates.EXECUTOR, "a", gate=str(c_gate)),
                _node("d", "tests.count", "b", "c"),
            ],
        },
    )
    instance_id = start(live_api, "fail-diamond")
    # both branches are running before b is let go: c is running when b fails
    wait_for(lambda: {"b", "c"} <= {e.node_id for e in _entered(db, instance_id)}, 30, "b and c to run")
    open_gate(b_gate)

    status = live_api.wait_status(instance_id)
    assert status["status"] == "failed" and status["failedNodes"] == ["b"]
    assert status["currentNodes"] == ["c"]
    d = _node_views(live_api, instance_id)["d"]
    assert (d["status"], d["skipReason"], d["error"]["failedNode"]) == ("skipped", "upstream failed", "b")

    open_gate(c_gate)
    wait_for(lambda: nodes(db, instance_id)["c"].status == "completed", 30, "c to complete")
    after = live_api.get(f"/api/v1/instances/{instance_id}/status").json()
    assert after["status"] == "failed" and after["skippedNodes"] == ["d"]
    assert after["progress"] == 75  # a, b and c finished; d never ran

    set_flag(flag)
    follow_up(lifecycle.retry(db, instance_id))
    status = live_api.wait_status(instance_id, statuses=("completed", "failed"))
    assert status["status"] == "completed", status
    assert runs(db, instance_id) == {"a": 1, "b": 2, "c": 1, "d": 1}


def _entered(db: Any, instance_id: str) -> list[Any]:
    return effects(db, instance_id, "entered")


def test_progress_after_a_cancel_counts_only_the_nodes_that_finished(db, live_api, processes, tmp_path):
    processes.worker("w1", ORCH_EXECUTOR_MODULES=gates.MODULES)
    gate = tmp_path / "gate"
    define(
        live_api,
        {
            "name": "cancel-progress",
            "version": "1.0.0",
            "nodes": [
                _node("n1"),
                _node("n2", gates.EXECUTOR, "n1", gate=str(gate)),
                _node("n3", "tests.count", "n2"),
                _node("n4", "tests.count", "n3"),
            ],
        },
    )
    instance_id = start(live_api, "cancel-progress")
    wait_for(lambda: _entered(db, instance_id), 30, "n2 to enter its gate")

    follow_up(lifecycle.cancel(db, instance_id))
    status = live_api.get(f"/api/v1/instances/{instance_id}/status").json()
    assert status["status"] == "cancelled"
    assert status["completedNodes"] == ["n1"]
    assert status["progress"] == 25  # n1 of 4: n2 was cancelled while running, n3 and n4 never ran

    # let n2 go: its late result is fenced off, and the progress does not move
    open_gate(gate)
    wait_for(lambda: any("dropped" in m for m in log_messages(db, instance_id, "n2")), 30, "n2 to end")
    assert live_api.get(f"/api/v1/instances/{instance_id}/status").json()["progress"] == 25
