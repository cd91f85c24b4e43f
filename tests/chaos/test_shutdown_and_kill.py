"""Workers going away mid-node: warm shutdown hands nodes back from their checkpoints, a SIGKILLed
worker's node is recovered by the sweep, and a restarted worker takes back what its id held."""

from __future__ import annotations

import signal
import time

import pytest

from tests.acceptance.helpers import define, effects, nodes, start
from tests.chaos import helpers as chaos_helpers
from tests.support.executors import open_gate
from tests.support.fixtures import FAST
from tests.support.services import wait_for

HELD_AT = 5  # `copy` checkpoints this many steps, then waits for the test to stop or kill its worker
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
            "config": {"total": 40, "delay": 0.05, "gate": "copy", "gateAt": HELD_AT},
        },
        {"id": "report", "type": "task", "executor": "noop", "dependsOn": ["copy"]},
        {"id": "done", "type": "task", "executor": "noop", "dependsOn": ["report"]},
    ],
}


def _held(engine, instance_id, worker):
    """`copy` runs on `worker`, its first HELD_AT steps checkpointed, waiting at its gate."""
    row = nodes(engine, instance_id)["copy"]
    return row.status == "running" and row.worker_id == worker and bool(effects(engine, instance_id, "gate"))


def _assert_each_step_once(engine, instance_id, total=40):
    """No step lost, none redone: the attempt after a SIGTERM or a SIGKILL at the gate resumed from
    the checkpoint the first attempt wrote before it."""
    steps = [int(e.data) for e in effects(engine, instance_id, "step")]
    assert sorted(steps) == list(range(total)), steps
    assert nodes(engine, instance_id)["copy"].output == {"done": total, "resumedFrom": HELD_AT}


def test_sigterm_hands_the_node_back_and_another_worker_resumes_from_its_checkpoint(
    db, live_api, processes, redis_client
):
    w1 = processes.worker("w1")
    define(live_api, STEPS)
    instance_id = start(live_api, "long-steps")
    wait_for(lambda: _held(db, instance_id, "w1"), 30, "some steps on w1")

    w1.signal(signal.SIGTERM)
    w1.proc.wait(timeout=30)
    row = nodes(db, instance_id)["copy"]
    assert (row.status, row.attempt, row.failures) == ("queued", 2, 0), row.error

    open_gate(redis_client, "copy")
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
            # its gate is never opened: only the end of the grace period can take the node away
            "nodes": [
                {"id": "nap", "type": "task", "executor": "tests.stubborn", "config": {"gate": "never"}}
            ],
        },
    )
    instance_id = start(live_api, "stubborn")
    wait_for(lambda: effects(db, instance_id, "gate"), 30, "the node to run")

    began = time.monotonic()
    w1.signal(signal.SIGTERM)
    w1.proc.wait(timeout=30)
    took = time.monotonic() - began
    grace = float(FAST["ORCH_SHUTDOWN_GRACE"])
    assert grace <= took < grace + 10, took
    row = nodes(db, instance_id)["nap"]
    assert (row.status, row.attempt) == ("queued", 2)


def test_a_restarted_worker_takes_back_the_nodes_its_id_held(db, live_api, processes, redis_client):
    w1 = processes.worker("w1")
    define(live_api, STEPS)
    instance_id = start(live_api, "long-steps")
    wait_for(lambda: _held(db, instance_id, "w1"), 30, "some steps on w1")

    w1.kill()  # no sweep runs in this test: only the restart can recover the node
    open_gate(redis_client, "copy")
    processes.worker("w1")

    assert live_api.wait_status(instance_id, timeout=60)["status"] == "completed"
    _assert_each_step_once(db, instance_id)
    assert nodes(db, instance_id)["copy"].attempt == 2


@pytest.mark.both_brokers
def test_sigkill_mid_node_is_recovered_by_the_sweep_on_another_worker_in_time(
    db, live_api, processes, redis_client
):
    w1 = processes.worker("w1", wait=False)
    # w2 cannot take `tests` nodes
    w2 = processes.worker("w2", wait=False, queues=["orchestrator", "default"])
    processes.wait_all_registered({"w1": w1, "w2": w2})
    processes.beat()
    define(live_api, STEPS)  # held at its gate: still running on w1 after w3 started, however long that takes
    instance_id = start(live_api, "long-steps")
    wait_for(lambda: _held(db, instance_id, "w1"), 30, "some steps on w1")
    # w3 is up before the kill (nothing else is queued, so it idles): the measurement is the
    # recovery alone, not a worker's start-up on a busy machine
    w3 = processes.worker("w3")
    assert nodes(db, instance_id)["copy"].worker_id == "w1"

    w1.kill()
    killed_at = time.monotonic()
    open_gate(redis_client, "copy")
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
    _assert_each_step_once(db, instance_id)
