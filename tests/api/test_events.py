"""`/api/v1/instances/<id>/events`: Server-Sent Events of a running instance, read over real HTTP."""

from __future__ import annotations

from typing import Any

import requests

from orchestrator.client_cli import parse_events
from tests.api.helpers import assert_error, chain, create, define


def read_events(response: requests.Response) -> list[tuple[str, Any, str | None]]:
    response.encoding = "utf-8"
    return list(parse_events(response.iter_lines(decode_unicode=True)))


def test_events_follow_every_node_to_the_end_in_order(live_api, processes):
    processes.worker("w1")
    define(live_api, chain("five", 5, executor="sleep", seconds=0.15))
    instance_id = create(live_api, {"workflow": "five"})["id"]

    response = live_api.http.get(
        f"{live_api.url}/api/v1/instances/{instance_id}/events", stream=True, timeout=60
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = read_events(response)

    names = [name for name, _, _ in events]
    assert names[-1] == "end" and names.count("end") == 1
    assert events[-1][1] == {"status": "completed"}
    completions = [
        data["nodeId"] for name, data, _ in events if name == "node" and data["status"] == "completed"
    ]
    assert completions == ["n1", "n2", "n3", "n4", "n5"]
    statuses = [data["status"] for name, data, _ in events if name == "status"]
    assert statuses[-1] == "completed" and "running" in statuses
    final_status = [data for name, data, _ in events if name == "status"][-1]
    assert final_status["progress"] == 100 and final_status["completedNodes"] == [
        "n1",
        "n2",
        "n3",
        "n4",
        "n5",
    ]
    # log lines come once each, in order, with their id as the SSE id
    log_ids = [int(event_id) for name, _, event_id in events if name == "log"]
    assert log_ids == sorted(set(log_ids))
    all_logs = live_api.get(f"/api/v1/instances/{instance_id}/logs").json()["logs"]
    assert log_ids == [line["id"] for line in all_logs]

    # a reconnecting client resumes the log after its Last-Event-ID and still gets the end
    headers = {"Last-Event-ID": str(log_ids[-2])}
    again = live_api.http.get(
        f"{live_api.url}/api/v1/instances/{instance_id}/events", stream=True, timeout=30, headers=headers
    )
    resumed = read_events(again)
    assert [int(i) for name, _, i in resumed if name == "log"] == log_ids[-1:]
    assert resumed[-1] == ("end", {"status": "completed"}, None)


def test_events_of_an_unknown_instance_are_a_json_404(live_api):
    assert_error(live_api.get("/api/v1/instances/nope/events"), 404, "NOT_FOUND")
    assert_error(live_api.get("/api/v1/instances/nope/events?afterId=x"), 422, "VALIDATION_ERROR")
