"""Workers going away mid-node: warm shutdown hands nodes back from their checkpoints, a SIGKILLed
worker's node is recovered by the sweep, and a restarted worker takes back what its id held."""

from __future__ import annotations

import signal
import time

import pytest

from tests.acceptance.helpers import define, effects, nodes, start
from tests.chaos import helpers as chaos_helpers
from tests.support.fixtures import FAST
from tests.support.services import wait_for

STEPS = {
    "name": "long-steps",
    "version": "1.0.0",
    "nodes": [
        {"id": "prepare", "type": "task", "executor": "noop"},
        {
            "id": "copy",
            "type": "task",
            "executor": "tests.steps",
            "dependsOn": ["prepare"],
            "config": {"total": 40, "delay": 0.1},
        },
        {"id": "report", "type": "task", "executor": "noop", "dependsOn": ["copy"]},
        {"id": "done", "type": "task", "executor": "noop", "dependsOn": ["report"]},
    ],
}

LONGER_STEPS = {
    **STEPS,
    "name": "longer-steps",
    "nodes": [
        {**node, "config": {"total": 80, "delay": 0.1}} if node["id"] == "copy" else node
        for node in STEPS["nodes"]
    ],
}


def _steps_done(engine, instance_id):
    return len(effects(engine, instance_id, "step"))


def _assert_each_step_once(engine, instance_id, total=40):
    steps = [int(e.data) for e in effects(engine, instance_id, "step")]
    assert sorted(steps) == list(range(total)), steps  # none lost, none redone


def _assert_each_step_done_resuming_from_the_checkpoint(engine, instance_id, total=40):
    """After a SIGKILL: no step lost, and only the step in flight may run again (a kill between its
    effect and its checkpoint: execution is at least once), never the steps before it."""
    steps = [int(e.data) for e in effects(engine, instance_id, "step")]
    assert sorted(set(steps)) == list(range(total)), steps
    assert len(steps) - total <= 1, steps


def test_sigterm_hands_the_node_back_and_another_worker_resumes_from_its_checkpoint(db, live_api, processes):
    w1 = processes.worker("w1")
    define(live_api, STEPS)
    instance_id = start(live_api, "long-steps")
    wait_for(lambda: _steps_done(db, instance_id) >= 5, 30, "some steps on w1")

    w1.signal(signal.SIGTERM)
    w1.proc.wait(timeout=30)
    row = nodes(db, instance_id)["copy"]
    assert (row.status, row.attempt, row.failures) == ("queued", 2, 0), row.error

    processes.worker("w2")
    assert live_api.wait_status(instance_id)["status"] == "completed"
    _assert_each_step_once(db, instance_id)
    attempts = {e.attempt for e in effects(db, instance_id, "step")}
    assert attempts == {1, 2}
    assert nodes(db, instance_id)["copy"].worker_id == "w2"


def test_a_node_that_ignores_should_stop_is_handed_back_when_the_grace_period_ends(db, live_api, processes):
    w1 = processes.worker("w1")
    define(
        live_api,
        {
            "name": "stubborn",
            "version": "1.0.0",
            "nodes": [{"id": "nap", "type": "task", "executor": "tests.stubborn", "config": {"seconds": 60}}],
        },
    )
    instance_id = start(live_api, "stubborn")
    wait_for(lambda: nodes(db, instance_id)["nap"].status == "running", 30, "the node to run")

    began = time.monotonic()
    w1.signal(signal.SIGTERM)
    w1.proc.wait(timeout=30)
    took = time.monotonic() - began
    grace = float(FAST["ORCH_SHUTDOWN_GRACE"])
    assert grace <= took < grace + 10, took
    row = nodes(db, instance_id)["nap"]
    assert (row.status, row.attempt) == ("queued", 2)


def test_a_restarted_worker_takes_back_the_nodes_its_id_held(db, live_api, processes):
    w1 = processes.worker("w1")
    define(live_api, STEPS)
    instance_id = start(live_api, "long-steps")
    wait_for(lambda: _steps_done(db, instance_id) >= 5, 30, "some steps on w1")

    w1.kill()  # no sweep runs in this test: only the restart can recover the node
    processes.worker("w1")

    assert live_api.wait_status(instance_id, timeout=60)["status"] == "completed"
    _assert_each_step_done_resuming_from_the_checkpoint(db, instance_id)
    assert nodes(db, instance_id)["copy"].attempt == 2


@pytest.mark.both_brokers
def test_sigkill_mid_node_is_recovered_by_the_sweep_on_another_worker_in_time(db, live_api, processes):
    w1 = processes.worker("w1")
    processes.worker("w2", queues=["orchestrator", "default"])  # w2 cannot take `tests` nodes
    processes.beat()
    define(live_api, LONGER_STEPS)  # long enough to be still running after w3 started
    instance_id = start(live_api, "longer-steps")
    wait_for(lambda: _steps_done(db, instance_id) >= 5, 30, "some steps on w1")
    # w3 is up before the kill (nothing else is queued, so it idles): the measurement is the
    # recovery alone, not a worker's start-up on a busy machine
    w3 = processes.worker("w3")
    assert nodes(db, instance_id)["copy"].worker_id == "w1"

    w1.kill()
    killed_at = time.monotonic()
    wait_for(
        lambda: (
            nodes(db, instance_id)["copy"].worker_id == "w3"
            and nodes(db, instance_id)["copy"].status in ("running", "completed")
        ),
        30,
        "the node to run again on w3",
    )
    recovered_in = time.monotonic() - killed_at
    bound = float(FAST["ORCH_HEARTBEAT_TIMEOUT"]) + float(FAST["ORCH_RECOVERY_INTERVAL"]) + 2
    print(f"SIGKILL -> running again on another worker: {recovered_in:.2f}s (bound {bound:.1f}s)")
    chaos_helpers.record_recovery("single kill: SIGKILL -> running again on another worker", recovered_in)
    assert recovered_in <= bound
    assert w3.alive()
    assert live_api.wait_status(instance_id)["status"] == "completed"
    _assert_each_step_done_resuming_from_the_checkpoint(db, instance_id, total=80)
