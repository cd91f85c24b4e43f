"""Map nodes on real workers: 1,000 items each run once with outputs in index order, maxConcurrency
measured from the items' own start and end times, onItemFailure, a retry of only the failed items,
and the API's view of a map (nodes list, items pages, progress, bad definitions)."""

from __future__ import annotations

from typing import Any

from tests.acceptance.helpers import define, effects, nodes, runs, start
from tests.support.executors import MAP_FIXED_GATE, map_runs, open_gate
from tests.support.services import wait_for


def mapping(name: str, **map_fields: Any) -> dict[str, Any]:
    """list (from the input) -> map of `tests.map_item` -> after (reads the map's output)."""
    return {
        "name": name,
        "version": "1.0.0",
        "nodes": [
            {"id": "list", "executor": "noop", "config": {"items": "${input.list}"}},
            {
                "id": "m",
                "type": "map",
                "dependsOn": ["list"],
                "over": "${nodes.list.output.items}",
                "node": {
                    "executor": "tests.map_item",
                    "config": {"index": "${index}", "item": "${item}", "fail": "${item.fail}"},
                },
                **map_fields,
            },
            {
                "id": "after",
                "executor": "noop",
                "dependsOn": ["m"],
                "config": {"n": "${nodes.m.output.failed}"},
            },
        ],
    }


def page_item(api: Any, url: str, index: int) -> dict[str, Any]:
    (item,) = api.get(url, params={"after": index - 1, "limit": 1}).json()["items"]
    return item


def items(count: int, failing: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    return [{"n": i, "fail": i in failing} for i in range(count)]


def test_a_map_over_1000_items_runs_each_once_and_completes_with_outputs_in_order(
    db, live_api, processes, redis_client
):
    processes.workers(["w1", "w2"], concurrency=2)
    define(live_api, mapping("map-1000"))
    instance_id = start(live_api, "map-1000", {"list": items(1000)})

    assert live_api.wait_status(instance_id, timeout=180)["status"] == "completed"

    assert map_runs(redis_client, instance_id) == {i: 1 for i in range(1000)}
    assert live_api.get(f"/api/v1/instances/{instance_id}").json()["workers"] == ["w1", "w2"]
    rows = nodes(db, instance_id)
    assert rows["m"].output == {
        "items": [{"index": i, "item": item} for i, item in enumerate(items(1000))],
        "failed": [],
    }
    assert rows["after"].output == {"n": []}
    listed = live_api.get(f"/api/v1/instances/{instance_id}/nodes").json()["nodes"]
    assert [(n["nodeId"], n["type"]) for n in listed] == [("list", "task"), ("m", "map"), ("after", "task")]
    assert listed[1]["items"] == {"total": 1000, "done": 1000, "byStatus": {"completed": 1000}}
    url = f"/api/v1/instances/{instance_id}/nodes/m/items"
    page = live_api.get(url, params={"limit": 2, "after": 10}).json()
    assert [(x["index"], x["nodeId"], x["output"]["index"]) for x in page["items"]] == [
        (11, "m[11]", 11),
        (12, "m[12]", 12),
    ]
    assert page["next"] == 12
    assert live_api.get(url, params={"after": 998}).json() == {
        "items": [page_item(live_api, url, 999)],
        "next": None,
    }
    status = live_api.get(f"/api/v1/instances/{instance_id}/status").json()
    assert status["progress"] == 100 and status["completedNodes"] == ["list", "m", "after"]


def test_max_concurrency_5_is_never_exceeded(db, live_api, processes):
    processes.worker("w1", concurrency=6)
    define(live_api, mapping("map-capped", maxConcurrency=5))
    instance_id = start(live_api, "map-capped", {"list": items(40)})

    assert live_api.wait_status(instance_id, timeout=120)["status"] == "completed"

    spans = [(r.started_at, r.finished_at) for r in nodes(db, instance_id).values() if r.map_node_id]
    assert len(spans) == 40
    # an end before a start at the same instant: the slot was freed first
    events = sorted([(s, 1) for s, _ in spans] + [(f, -1) for _, f in spans], key=lambda e: (e[0], e[1]))
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    assert most <= 5, f"{most} items ran at once"


def test_on_item_failure_continue_completes_with_the_failed_indices(db, live_api, processes):
    processes.worker("w1", concurrency=4)
    define(live_api, mapping("map-continue", onItemFailure="continue"))
    instance_id = start(live_api, "map-continue", {"list": items(10, failing=(2, 7))})

    assert live_api.wait_status(instance_id, timeout=120)["status"] == "completed"

    rows = nodes(db, instance_id)
    assert rows["m"].output["failed"] == [2, 7]
    assert [x is None for x in rows["m"].output["items"]] == [i in (2, 7) for i in range(10)]
    assert rows["after"].output == {"n": [2, 7]}
    page = live_api.get(f"/api/v1/instances/{instance_id}/nodes/m/items", params={"status": "failed"}).json()
    assert [(x["index"], x["nodeId"], x["status"]) for x in page["items"]] == [
        (2, "m[2]", "failed"),
        (7, "m[7]", "failed"),
    ]
    assert page["next"] is None and page["items"][0]["error"]["message"] == "planned failure of item 2"


def test_on_item_failure_fail_fails_the_instance(db, live_api, processes):
    processes.worker("w1", concurrency=2)
    define(live_api, mapping("map-fail"))
    instance_id = start(live_api, "map-fail", {"list": items(6, failing=(3,))})

    final = live_api.wait_status(instance_id, timeout=120)

    assert final["status"] == "failed" and final["error"]["nodeId"] == "m"
    rows = nodes(db, instance_id)
    assert rows["m"].status == "failed" and rows["m"].error["code"] == "ITEM_FAILED"
    assert rows["m"].error["index"] == 3 and rows["after"].status == "skipped"


def test_a_retry_from_a_map_reruns_only_the_items_that_did_not_complete(
    db, live_api, processes, redis_client
):
    processes.worker("w1", concurrency=2)
    define(live_api, mapping("map-retry"))
    instance_id = start(live_api, "map-retry", {"list": items(12, failing=(1, 8))})
    assert live_api.wait_status(instance_id, timeout=120)["status"] == "failed"

    def settled() -> dict[int, str] | None:
        first = {r.item_index: r.status for r in nodes(db, instance_id).values() if r.map_node_id is not None}
        return None if {"queued", "running"} & set(first.values()) else first

    first = wait_for(settled, 60, "the items still running when the map failed to end")
    assert first[1] == "failed" or first[8] == "failed"
    runs_before = map_runs(redis_client, instance_id)

    open_gate(redis_client, MAP_FIXED_GATE)
    retried = live_api.post(f"/api/v1/instances/{instance_id}/retry", {"fromNode": "m"})
    assert retried.status_code == 200, retried.text
    assert live_api.wait_status(instance_id, timeout=120)["status"] == "completed"

    runs_after = map_runs(redis_client, instance_id)
    for index, status in first.items():
        again = 0 if status == "completed" else 1
        assert runs_after.get(index, 0) == runs_before.get(index, 0) + again, (index, status)
    assert nodes(db, instance_id)["m"].output["items"] == [
        {"index": i, "item": x} for i, x in enumerate(items(12, (1, 8)))
    ]


def test_the_api_refuses_bad_map_definitions_and_unknown_map_nodes(db, live_api):
    def problems(node: dict[str, Any]) -> list[str]:
        body = {"name": "bad-map", "version": "1.0.0", "nodes": [{"id": "m", "type": "map", **node}]}
        response = live_api.post("/api/v1/definitions", body)
        assert response.status_code == 422, response.text
        return [p["field"] for p in response.json()["error"]["details"]]

    body = {"executor": "noop"}
    assert "nodes[0].over" in problems({"node": body})
    assert "nodes[0].over" in problems({"over": "not a template", "node": body})
    assert "nodes[0].over" in problems({"over": 5, "node": body})
    assert "nodes[0].node" in problems({"over": "${input.list}"})

    define(live_api, mapping("map-404"))
    instance_id = start(live_api, "map-404", {"list": []}, start=False)
    assert live_api.get(f"/api/v1/instances/{instance_id}/nodes/m/items").json() == {
        "items": [],
        "next": None,
    }
    for node in ("nope", "list"):
        assert live_api.get(f"/api/v1/instances/{instance_id}/nodes/{node}/items").status_code == 404
    assert (
        live_api.get(f"/api/v1/instances/{instance_id}/nodes/m/items", params={"limit": 100}).status_code
        == 200
    )
    for name, value in (("limit", 0), ("limit", 101), ("status", "done"), ("after", "x")):
        bad = live_api.get(f"/api/v1/instances/{instance_id}/nodes/m/items", params={name: value})
        assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == name


def gated_map(name: str) -> dict[str, Any]:
    body = mapping(name, maxConcurrency=2)
    body["nodes"][1]["node"] = {"executor": "tests.gated", "config": {"gate": name, "i": "${index}"}}
    return body


def _items_by_status(db, instance_id: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for key, row in nodes(db, instance_id).items():
        if row.map_node_id:
            found.setdefault(row.status, set()).add(key)
    return found


def test_pause_sends_no_item_until_resume_and_cancel_cancels_every_open_item(
    db, live_api, processes, redis_client
):
    processes.worker("w1", concurrency=4)  # two items of each map at once
    define(live_api, gated_map("map-paused"))
    define(live_api, gated_map("map-cancelled"))
    paused = start(live_api, "map-paused", {"list": items(6)})
    cancelled = start(live_api, "map-cancelled", {"list": items(6)})
    for instance_id in (paused, cancelled):
        wait_for(lambda i=instance_id: len(effects(db, i, "gate")) == 2, 60, "two items held at the gate")

    assert live_api.post(f"/api/v1/instances/{paused}/pause").status_code == 200
    # the held items stop at their next beat and wait, queued, as do the items not started
    wait_for(lambda: "running" not in _items_by_status(db, paused), 30, "the paused map's items to stop")
    open_gate(redis_client, "map-paused")
    assert _items_by_status(db, paused) == {
        "queued": {"m[0]", "m[1]"},
        "pending": {"m[2]", "m[3]", "m[4]", "m[5]"},
    }
    assert live_api.post(f"/api/v1/instances/{paused}/resume").status_code == 200
    assert live_api.wait_status(paused, timeout=60)["status"] == "completed"
    assert {k: v for k, v in runs(db, paused).items() if k.startswith("m[")} == {
        f"m[{i}]": 1 for i in range(6)
    }

    assert live_api.post(f"/api/v1/instances/{cancelled}/cancel").status_code == 200
    wait_for(lambda: set(_items_by_status(db, cancelled)) == {"cancelled"}, 30, "every item cancelled")
    assert nodes(db, cancelled)["m"].status == "cancelled"
    assert not runs(db, cancelled)
