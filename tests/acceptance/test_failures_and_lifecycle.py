"""Retries with backoff, checkpoints across attempts, pause/resume/cancel/retry and timeouts."""

from __future__ import annotations

from orchestrator import lifecycle
from tests.acceptance.helpers import define, effects, log_messages, nodes, runs, start
from tests.support.executors import open_gate
from tests.support.services import wait_for
from workers.tasks import follow_up


def _flaky(name: str, retries: int) -> dict:
    return {
        "name": name,
        "version": "1.0.0",
        "nodes": [
            {"id": "before", "type": "task", "executor": "noop"},
            {
                "id": "flaky",
                "type": "task",
                "executor": "tests.flaky",
                "dependsOn": ["before"],
                "retries": retries,
                "retryDelay": 20,
                "config": {"failures": 2},
            },
            {"id": "after", "type": "task", "executor": "noop", "dependsOn": ["flaky"]},
        ],
    }


def test_a_node_that_fails_twice_completes_on_its_third_attempt(db, live_api, processes):
    processes.worker("w1")
    define(live_api, _flaky("flaky-3", retries=3))
    instance_id = start(live_api, "flaky-3")

    assert live_api.wait_status(instance_id)["status"] == "completed"
    row = nodes(db, instance_id)["flaky"]
    assert (row.status, row.attempt, row.output) == ("completed", 3, {"attempt": 3})
    assert runs(db, instance_id)["flaky"] == 3
    failures = [m for m in log_messages(db, instance_id, "flaky") if "failed" in m]
    assert failures == [
        "node attempt 1 failed: planned failure 1",
        "node attempt 2 failed: planned failure 2",
    ]


def test_a_node_out_of_retries_fails_the_instance_with_its_error(db, live_api, processes):
    processes.worker("w1")
    define(live_api, _flaky("flaky-1", retries=1))
    instance_id = start(live_api, "flaky-1")

    status = live_api.wait_status(instance_id)
    assert status["status"] == "failed"
    assert status["failedNodes"] == ["flaky"]
    assert status["error"]["code"] == "NODE_FAILED"
    assert status["error"]["nodeId"] == "flaky"
    assert status["error"]["message"] == "planned failure 2"
    after = nodes(db, instance_id)["after"]  # can no longer run: skipped, and says why
    assert (after.status, after.error["code"]) == ("skipped", "UPSTREAM_FAILED")


def test_a_retried_node_resumes_from_its_checkpoint(db, live_api, processes):
    processes.worker("w1")
    define(
        live_api,
        {
            "name": "resumable",
            "version": "1.0.0",
            "nodes": [
                {
                    "id": "copy",
                    "type": "task",
                    "executor": "tests.steps",
                    "retries": 1,
                    "retryDelay": 10,
                    "config": {"total": 6, "delay": 0.01, "failAt": 3},
                }
            ],
        },
    )
    instance_id = start(live_api, "resumable")

    assert live_api.wait_status(instance_id)["status"] == "completed"
    steps = [(e.attempt, int(e.data)) for e in effects(db, instance_id, "step")]
    assert steps == [(1, 0), (1, 1), (1, 2), (2, 3), (2, 4), (2, 5)]  # nothing done twice
    assert nodes(db, instance_id)["copy"].output == {"done": 6, "resumedFrom": 3}


def _chain(name: str, held: str, executor: str) -> dict:
    """n0 -> ... -> n9; node `held` runs `executor` and waits at gate `held` (still running when the
    test pauses or cancels, however slow the machine), the others sleep briefly."""
    return {
        "name": name,
        "version": "1.0.0",
        "nodes": [
            {
                "id": f"n{i}",
                "type": "task",
                **(
                    {"executor": executor, "config": {"gate": held}}
                    if f"n{i}" == held
                    else {"executor": "sleep", "config": {"seconds": 0.05}}
                ),
                **({"dependsOn": [f"n{i - 1}"]} if i else {}),
            }
            for i in range(10)
        ],
    }


def _started(engine, instance_id):
    return {n for n, row in nodes(engine, instance_id).items() if row.started_at is not None}


def _held(engine, instance_id, node_id):
    return runs(engine, instance_id, kind="gate")[node_id] > 0


def test_pause_stops_enqueueing_and_resume_finishes(db, live_api, processes, redis_client):
    processes.worker("w1")
    # n2 ignores should_stop: it finishes once the gate opens, while the instance is paused
    define(live_api, _chain("chain-10", "n2", "tests.work"))
    instance_id = start(live_api, "chain-10")
    wait_for(lambda: _held(db, instance_id, "n2"), 30, "n2 to run")

    follow_up(lifecycle.pause(db, instance_id))
    open_gate(redis_client, "n2")
    # the node that was running when we paused ends; after that nothing is running, and no message
    # is waiting in the broker
    wait_for(
        lambda: not any(r.status == "running" for r in nodes(db, instance_id).values()),
        30,
        "the running node to end",
    )
    assert nodes(db, instance_id)["n2"].status == "completed"
    started_at_pause = _started(db, instance_id)
    assert live_api.get(f"/api/v1/instances/{instance_id}/status").json()["status"] == "paused"
    # n2's message is acknowledged (late) only after its completion is committed: wait for the ack
    wait_for(lambda: redis_client.hlen("unacked") == 0, 30, "n2's message to be acknowledged")
    queued_messages = [
        k for k in redis_client.keys("*") if redis_client.type(k) == b"list"
    ]  # Celery's queues
    assert queued_messages == []
    assert started_at_pause == {"n0", "n1", "n2"}  # n2's successor was released, not sent
    assert nodes(db, instance_id)["n3"].status == "queued"

    follow_up(lifecycle.resume(db, instance_id))
    assert live_api.wait_status(instance_id)["status"] == "completed"
    assert all(row.status == "completed" for row in nodes(db, instance_id).values())


def test_cancel_ends_the_instance_with_nothing_queued_or_running(db, live_api, processes):
    processes.worker("w1")
    # n1 heeds should_stop and its gate never opens: it is running when the cancel comes
    define(live_api, _chain("chain-10", "n1", "tests.gated"))
    instance_id = start(live_api, "chain-10")
    wait_for(lambda: _held(db, instance_id, "n1"), 30, "n1 to run")

    follow_up(lifecycle.cancel(db, instance_id))

    assert live_api.get(f"/api/v1/instances/{instance_id}/status").json()["status"] == "cancelled"
    states = {row.status for row in nodes(db, instance_id).values()}
    assert states <= {"completed", "cancelled"} and "cancelled" in states
    # the worker sees should_stop at its next heartbeat and its late result is fenced off
    wait_for(
        lambda: any("dropped" in m or "stopped" in m for m in log_messages(db, instance_id)),
        30,
        "the running node to notice the cancel",
    )
    assert {row.status for row in nodes(db, instance_id).values()} <= {"completed", "cancelled"}


def test_retry_of_a_failed_instance_reruns_failed_nodes_and_keeps_outputs(db, live_api, processes):
    processes.worker("w1")
    define(live_api, _flaky("flaky-0", retries=0))
    instance_id = start(live_api, "flaky-0")
    assert live_api.wait_status(instance_id)["status"] == "failed"

    follow_up(lifecycle.retry(db, instance_id))  # attempt 2 fails too: flaky fails attempts 1 and 2
    assert live_api.wait_status(instance_id, statuses=("failed",))["status"] == "failed"
    follow_up(lifecycle.retry(db, instance_id))
    assert live_api.wait_status(instance_id)["status"] == "completed"
    assert runs(db, instance_id)["flaky"] == 3
    before = nodes(db, instance_id)["before"]
    assert before.attempt == 1  # completed nodes keep their output and are not run again


def test_retry_from_a_node_reruns_it_and_everything_downstream(db, live_api, processes):
    processes.worker("w1")
    define(live_api, DIAMOND_FAIL)
    instance_id = start(live_api, "diamond-fail")
    assert live_api.wait_status(instance_id)["status"] == "failed"

    follow_up(lifecycle.retry(db, instance_id, from_node="b"))
    assert live_api.wait_status(instance_id, statuses=("failed",))["status"] == "failed"
    assert runs(db, instance_id) == {"a": 1, "b": 2, "c": 1}


DIAMOND_FAIL = {
    "name": "diamond-fail",
    "version": "1.0.0",
    "nodes": [
        {"id": "a", "type": "task", "executor": "tests.count"},
        {"id": "b", "type": "task", "executor": "tests.count", "dependsOn": ["a"]},
        {"id": "c", "type": "task", "executor": "tests.count", "dependsOn": ["a"]},
        {"id": "d", "type": "task", "executor": "tests.fatal", "dependsOn": ["b", "c"]},
    ],
}


def test_a_workflow_past_its_timeout_fails_with_code_timeout(db, live_api, processes):
    processes.worker("w1")
    processes.beat()
    define(
        live_api,
        {
            "name": "slow",
            "version": "1.0.0",
            "timeout": 1000,
            # its gate never opens: only the workflow's timeout ends it
            "nodes": [{"id": "nap", "type": "task", "executor": "tests.gated", "config": {"gate": "never"}}],
        },
    )
    instance_id = start(live_api, "slow")

    status = live_api.wait_status(instance_id, timeout=30)
    assert status["status"] == "failed"
    assert status["error"]["code"] == "TIMEOUT"
    assert nodes(db, instance_id)["nap"].status == "cancelled"


def test_a_node_past_its_timeout_fails_its_attempt_and_retries(db, live_api, processes):
    processes.worker("w1")
    define(
        live_api,
        {
            "name": "slow-node",
            "version": "1.0.0",
            "nodes": [
                {
                    "id": "nap",
                    "type": "task",
                    "executor": "tests.gated",  # its gate never opens: only the node's timeout ends it
                    "timeout": 300,
                    "retries": 1,
                    "retryDelay": 10,
                    "config": {"gate": "never"},
                }
            ],
        },
    )
    instance_id = start(live_api, "slow-node")

    status = live_api.wait_status(instance_id, timeout=30)
    assert status["status"] == "failed"
    row = nodes(db, instance_id)["nap"]
    assert row.attempt == 2 and row.error["code"] == "NODE_TIMEOUT"
    assert sum("failed" in m for m in log_messages(db, instance_id, "nap")) == 2
