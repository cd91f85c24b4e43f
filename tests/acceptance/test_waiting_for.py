"""A node that could run but is not running says why: `waitingFor` in `GET /nodes` and in the status
object. `worker`: its message is sent and no worker of its queue has taken it; `retryDelay`: a retry
that is not due yet. Real workers: one for the control queue only, so `schedule` runs and the node
waits on `default` until a worker for it starts."""

from __future__ import annotations

from typing import Any

from tests.acceptance.helpers import define, start
from tests.support.services import wait_for

ONE = {
    "name": "waiting-one",
    "version": "1.0.0",
    "nodes": [{"id": "only", "type": "task", "executor": "noop"}],
}
RETRIED = {
    "name": "waiting-retry",
    "version": "1.0.0",
    "nodes": [
        {
            "id": "flaky",
            "type": "task",
            "executor": "tests.flaky",
            "retries": 1,
            "retryDelay": 600_000,  # never due within the test
            "config": {"failures": 1},
        }
    ],
}


def _seen(live_api: Any, instance_id: str) -> tuple[str, dict[str, str], str | None]:
    status = live_api.get(f"/api/v1/instances/{instance_id}/status").json()
    node = live_api.get(f"/api/v1/instances/{instance_id}/nodes").json()["nodes"][0]
    return status["status"], status["waitingFor"], node["waitingFor"]


def test_a_queued_node_says_it_waits_for_a_worker_until_one_takes_it(db, live_api, processes) -> None:
    processes.worker("control", queues=["orchestrator"])  # runs `schedule`, takes no node
    define(live_api, ONE)
    instance_id = start(live_api, "waiting-one")
    waiting = ("running", {"only": "worker"}, "worker")
    wait_for(lambda: _seen(live_api, instance_id) == waiting, 30, "the node to wait for a worker", 0.1)

    # paused, the node waits for the resume, not for a worker
    assert live_api.post(f"/api/v1/instances/{instance_id}/pause").status_code == 200
    assert _seen(live_api, instance_id) == ("paused", {}, None)
    assert live_api.post(f"/api/v1/instances/{instance_id}/resume").status_code == 200
    assert _seen(live_api, instance_id) == waiting

    processes.worker("nodes", queues=["default"])
    assert live_api.wait_status(instance_id)["status"] == "completed"
    assert _seen(live_api, instance_id) == ("completed", {}, None)


def test_a_retry_not_due_yet_waits_for_its_delay(db, live_api, processes) -> None:
    processes.worker("w1")
    define(live_api, RETRIED)
    instance_id = start(live_api, "waiting-retry")
    wait_for(
        lambda: _seen(live_api, instance_id) == ("running", {"flaky": "retryDelay"}, "retryDelay"),
        30,
        "the retry to wait for its delay",
        0.1,
    )
