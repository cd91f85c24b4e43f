"""A pause or a worker's graceful shutdown asks a running executor to stop; the built-in `sleep`
stops, checkpoints how long it slept and is handed back: no failed attempt, no retry used, and the
next attempt sleeps only what was left. The node has no `retries`: a stop counted as a failure would
fail the instance."""

from __future__ import annotations

import signal
from typing import Any

from sqlalchemy import select

from orchestrator.models import CheckpointRow
from tests.acceptance.helpers import define, nodes, start
from tests.support.services import wait_for

# far longer than it takes to see its first checkpoint (after 1 s) and stop it (at the next heartbeat,
# 0.5 s with the tests' settings), on a busy machine too; each test sleeps it once in all
SECONDS = 8


def _napping(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1.0.0",
        "nodes": [
            {"id": "nap", "type": "task", "executor": "sleep", "config": {"seconds": SECONDS}},
            {"id": "after", "type": "task", "executor": "noop", "dependsOn": ["nap"]},
        ],
    }


def _checkpoints(engine, instance_id: str) -> list[tuple[int, float]]:
    """(attempt, seconds slept) of every checkpoint of the `nap` node, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(CheckpointRow.attempt, CheckpointRow.data)
            .where(CheckpointRow.instance_id == instance_id, CheckpointRow.node_id == "nap")
            .order_by(CheckpointRow.id)
        ).all()
    return [(row.attempt, float(row.data["slept"])) for row in rows]


def _napping_for_a_while(engine, instance_id: str) -> None:
    """Wait for the sleep's first own checkpoint: it is running and has slept some time."""
    wait_for(lambda: _checkpoints(engine, instance_id), 60, "the sleep's first checkpoint", interval=0.1)


def _logs(live_api, instance_id: str, **filters: str) -> list[dict[str, Any]]:
    response = live_api.get(f"/api/v1/instances/{instance_id}/logs", params={"nodeId": "nap", **filters})
    assert response.status_code == 200, response.text
    return response.json()["logs"]  # type: ignore[no-any-return]


def _node(live_api, instance_id: str) -> dict[str, Any]:
    listed = live_api.get(f"/api/v1/instances/{instance_id}/nodes").json()["nodes"]
    return next(node for node in listed if node["nodeId"] == "nap")


def _assert_resumed_from_its_checkpoint_with_no_failure(db, live_api, instance_id: str) -> None:
    node = _node(live_api, instance_id)
    assert (node["status"], node["attempt"], node["failures"], node["error"]) == ("completed", 2, 0, None)
    assert node["output"] == {"slept": SECONDS}
    checkpoints = _checkpoints(db, instance_id)
    stopped_at = max(slept for attempt, slept in checkpoints if attempt == 1)
    assert stopped_at > 0, checkpoints
    # the second attempt started where the first one stood, not at zero
    resumed = [e for e in _logs(live_api, instance_id) if e["message"].startswith("resuming at")]
    assert [(e["attempt"], e["details"]["resumedFrom"]) for e in resumed] == [(2, stopped_at)], resumed
    assert all(slept >= stopped_at for attempt, slept in checkpoints if attempt == 2), checkpoints
    # its history shows no failure: no error line, no failed attempt, no retry
    assert _logs(live_api, instance_id, level="error") == []
    messages = [e["message"] for e in _logs(live_api, instance_id)]
    assert not any("failed" in m or "retry" in m for m in messages), messages


def test_a_paused_sleep_is_handed_back_and_resume_continues_it_from_its_checkpoint(db, live_api, processes):
    processes.worker("w1")
    define(live_api, _napping("pause-nap"))
    instance_id = start(live_api, "pause-nap")
    _napping_for_a_while(db, instance_id)

    paused = live_api.post(f"/api/v1/instances/{instance_id}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused", paused.text
    # the executor sees should_stop at its next heartbeat, stops, and its node waits queued, unsent
    wait_for(lambda: nodes(db, instance_id)["nap"].status == "queued", 30, "the sleep to be handed back")
    row = nodes(db, instance_id)["nap"]
    assert (row.attempt, row.failures, row.error) == (2, 0, None)
    assert live_api.get(f"/api/v1/instances/{instance_id}/status").json()["status"] == "paused"
    handed_back = [e for e in _logs(live_api, instance_id) if e["message"].startswith("node handed back")]
    assert len(handed_back) == 1 and handed_back[0]["level"] == "info", handed_back
    assert "asked to stop" in handed_back[0]["message"], handed_back

    resumed = live_api.post(f"/api/v1/instances/{instance_id}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "running", resumed.text
    assert live_api.wait_status(instance_id, timeout=SECONDS + 60)["status"] == "completed"
    _assert_resumed_from_its_checkpoint_with_no_failure(db, live_api, instance_id)


def test_sigterm_hands_a_sleep_back_and_another_worker_continues_it_from_its_checkpoint(
    db, live_api, processes
):
    w1 = processes.worker("w1", ORCH_SHUTDOWN_GRACE="2")
    define(live_api, _napping("sigterm-nap"))
    instance_id = start(live_api, "sigterm-nap")
    _napping_for_a_while(db, instance_id)

    w1.signal(signal.SIGTERM)
    w1.proc.wait(timeout=30)
    row = nodes(db, instance_id)["nap"]
    assert (row.status, row.attempt, row.failures, row.error) == ("queued", 2, 0, None)
    handed_back = [e for e in _logs(live_api, instance_id) if e["message"].startswith("node handed back")]
    # the executor stopped when asked: its own hand-back, not the one at the end of the grace period
    assert [e["details"]["reason"] for e in handed_back] == ["worker shutting down"], handed_back

    processes.worker("w2")
    assert live_api.wait_status(instance_id, timeout=SECONDS + 60)["status"] == "completed"
    _assert_resumed_from_its_checkpoint_with_no_failure(db, live_api, instance_id)
    assert _node(live_api, instance_id)["workerId"] == "w2"
