"""Full DAGs on real workers: fan-out, joins that run exactly once, conditions, routing."""

from __future__ import annotations

from tests.acceptance.helpers import define, nodes, runs, start
from tests.support.services import wait_for

DIAMOND = {
    "name": "diamond",
    "version": "1.0.0",
    "nodes": [
        {"id": "a", "type": "task", "executor": "tests.count"},
        {"id": "b", "type": "task", "executor": "tests.count", "dependsOn": ["a"]},
        {"id": "c", "type": "task", "executor": "tests.count", "dependsOn": ["a"]},
        {
            "id": "d",
            "type": "task",
            "executor": "tests.count",
            "dependsOn": ["b", "c"],
            "config": {"fromB": "${nodes.b.output.node}", "fromC": "${nodes.c.output.node}"},
        },
    ],
}
WIDTH = 50
FAN = {
    "name": "fan-50",
    "version": "1.0.0",
    "nodes": [
        {"id": "source", "type": "task", "executor": "tests.count"},
        *(
            {"id": f"leaf-{i}", "type": "task", "executor": "tests.count", "dependsOn": ["source"]}
            for i in range(WIDTH)
        ),
        {
            "id": "join",
            "type": "task",
            "executor": "tests.count",
            "dependsOn": [f"leaf-{i}" for i in range(WIDTH)],
        },
    ],
}


def test_diamond_and_wide_fan_in_run_each_join_exactly_once(db, live_api, processes):
    processes.workers(["w1", "w2"], concurrency=2)
    define(live_api, DIAMOND)
    define(live_api, FAN)
    diamonds = [start(live_api, "diamond") for _ in range(20)]
    fans = [start(live_api, "fan-50") for _ in range(10)]

    for instance_id in diamonds + fans:
        assert live_api.wait_status(instance_id, timeout=120)["status"] == "completed"

    for instance_id in diamonds:
        assert runs(db, instance_id) == {"a": 1, "b": 1, "c": 1, "d": 1}
        assert nodes(db, instance_id)["d"].output["fromB"] == "b"
    for instance_id in fans:
        counted = runs(db, instance_id)
        assert counted["join"] == 1, counted
        assert sum(counted.values()) == WIDTH + 2 and set(counted.values()) == {1}
    workers_used = {row.worker_id for i in fans for row in nodes(db, i).values()}
    assert workers_used == {"w1", "w2"}


CONDITIONAL = {
    "name": "conditional",
    "version": "1.0.0",
    "inputs": {"notify": {"type": "boolean", "required": True}},
    "nodes": [
        {"id": "work", "type": "task", "executor": "tests.count"},
        {
            "id": "notify",
            "type": "task",
            "executor": "tests.count",
            "dependsOn": ["work"],
            "when": "${input.notify}",
        },
        {"id": "after-notify", "type": "task", "executor": "tests.count", "dependsOn": ["notify"]},
        {"id": "finish", "type": "task", "executor": "tests.count", "dependsOn": ["after-notify", "work"]},
    ],
}


def test_a_false_when_skips_the_node_and_its_successors_still_run(db, live_api, processes):
    processes.worker("w1")
    define(live_api, CONDITIONAL)
    skipped = start(live_api, "conditional", {"notify": False})
    ran = start(live_api, "conditional", {"notify": True})

    status = live_api.wait_status(skipped)
    assert status["status"] == "completed"
    assert status["skippedNodes"] == ["notify"]
    assert runs(db, skipped) == {"work": 1, "after-notify": 1, "finish": 1}
    assert live_api.wait_status(ran)["skippedNodes"] == []
    assert runs(db, ran) == {"work": 1, "notify": 1, "after-notify": 1, "finish": 1}


def test_nodes_go_to_the_queue_of_their_executor_domain_or_their_own(db, live_api, processes):
    define(
        live_api,
        {
            "name": "routed",
            "version": "1.0.0",
            "nodes": [
                {"id": "plain", "type": "task", "executor": "noop"},
                {"id": "domain", "type": "task", "executor": "tests.count", "dependsOn": ["plain"]},
                {"id": "pinned", "type": "task", "executor": "noop", "queue": "gpu", "dependsOn": ["domain"]},
            ],
        },
    )
    processes.worker("w1")
    instance_id = start(live_api, "routed", priority="high")
    # nobody consumes `gpu` yet: the pinned node waits queued there
    wait_for(lambda: nodes(db, instance_id)["pinned"].status == "queued", 30, "the pinned node to be queued")
    queues = {node_id: row.queue for node_id, row in nodes(db, instance_id).items()}
    assert queues == {"plain": "default", "domain": "tests", "pinned": "gpu"}
    processes.worker("gpu-worker", queues=["gpu"])
    assert live_api.wait_status(instance_id)["status"] == "completed"
    assert nodes(db, instance_id)["pinned"].worker_id == "gpu-worker"


def test_a_critical_instance_overtakes_waiting_low_priority_ones(db, live_api, processes):
    define(
        live_api,
        {
            "name": "single",
            "version": "1.0.0",
            "nodes": [{"id": "only", "type": "task", "executor": "tests.count"}],
        },
    )
    lows = [start(live_api, "single", priority="low") for _ in range(5)]
    critical = start(live_api, "single", priority="critical")
    processes.worker("w1", concurrency=1)  # one slot: the order of execution is the order of delivery

    for instance_id in [*lows, critical]:
        assert live_api.wait_status(instance_id)["status"] == "completed"
    started = {i: nodes(db, i)["only"].started_at for i in [*lows, critical]}
    assert started[critical] < min(started[i] for i in lows), started
