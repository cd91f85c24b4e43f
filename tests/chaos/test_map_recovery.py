"""A map whose worker is SIGKILLed while items run: the sweep hands the killed items back, they resume
from their checkpoints on another worker, and every item is committed once."""

from __future__ import annotations

from tests.acceptance.helpers import define, effects, nodes, start
from tests.chaos import helpers as chaos_helpers
from tests.support.executors import open_gate
from tests.support.services import wait_for

ITEMS = 12
HELD_AT = 2  # each item checkpoints this many steps, then waits at the gate the test opens
STEPS = 4
MAP = {
    "name": "map-kill",
    "version": "1.0.0",
    "nodes": [
        {"id": "list", "executor": "noop", "config": {"items": list(range(ITEMS))}},
        {
            "id": "m",
            "type": "map",
            "dependsOn": ["list"],
            "over": "${nodes.list.output.items}",
            "node": {
                "executor": "tests.steps",
                "config": {
                    "total": STEPS,
                    "delay": 0.01,
                    "gate": "map-kill",
                    "gateAt": HELD_AT,
                    "n": "${item}",
                },
            },
        },
        {"id": "after", "executor": "noop", "dependsOn": ["m"]},
    ],
}


def test_a_map_resumes_after_its_worker_is_sigkilled_and_commits_every_item_once(
    db, live_api, processes, redis_client
):
    w1 = processes.worker("w1", concurrency=4)
    define(live_api, MAP)
    instance_id = start(live_api, "map-kill")

    def held() -> bool:
        at_gate = {e.node_id for e in effects(db, instance_id, "gate")}
        running = {k for k, r in nodes(db, instance_id).items() if r.status == "running" and r.map_node_id}
        return len(at_gate) >= 4 and at_gate <= running

    wait_for(held, 60, "four items held at the gate on w1")
    killed = {k for k, r in nodes(db, instance_id).items() if r.status == "running" and r.map_node_id}
    w1.kill()
    processes.worker("w2", concurrency=4)
    processes.beat()
    open_gate(redis_client, "map-kill")

    assert live_api.wait_status(instance_id, timeout=120)["status"] == "completed"

    chaos_helpers.assert_each_node_committed_once(db, [instance_id], effect_kind=None)
    rows = nodes(db, instance_id)
    steps: dict[str, list[int]] = {}
    for effect in effects(db, instance_id, "step"):
        steps.setdefault(effect.node_id, []).append(int(effect.data))
    assert {node: sorted(done) for node, done in steps.items()} == {
        f"m[{i}]": list(range(STEPS)) for i in range(ITEMS)
    }
    resumed = {f"m[{i}]": item["resumedFrom"] for i, item in enumerate(rows["m"].output["items"])}
    assert {node for node, start_at in resumed.items() if start_at == HELD_AT} == killed
    assert all(rows[node].attempt >= 2 for node in killed)
    assert rows["after"].status == "completed"
