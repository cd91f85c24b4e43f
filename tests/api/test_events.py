"""`/api/v1/instances/<id>/events`: Server-Sent Events of a running instance, read over real HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import requests
from sqlalchemy import insert, update

from api.events import FULL_POLL_S
from orchestrator import changes
from orchestrator.client_cli import parse_events
from orchestrator.models import InstanceRow, LogRow, NodeRow
from orchestrator.settings import Settings
from tests.acceptance.helpers import effects
from tests.api.helpers import assert_error, chain, create, define
from tests.support.executors import open_gate
from tests.support.fixtures import LiveApi
from tests.support.services import wait_for


def read_events(response: requests.Response) -> list[tuple[str, Any, str | None]]:
    response.encoding = "utf-8"
    return list(parse_events(response.iter_lines(decode_unicode=True)))


def test_events_follow_every_node_to_the_end_in_order(db, live_api, processes, redis_client):
    processes.worker("w1")
    five = chain("five", 5, executor="sleep", seconds=0.15)
    # n1 waits at a gate until the stream is open: the stream sees the instance run, however slow the
    # machine is to open it
    five["nodes"][0].update(executor="tests.gated", config={"gate": "five"})
    define(live_api, five)
    instance_id = create(live_api, {"workflow": "five"})["id"]
    wait_for(lambda: effects(db, instance_id, "gate"), 30, "n1 at its gate")

    response = live_api.http.get(
        f"{live_api.url}/api/v1/instances/{instance_id}/events", stream=True, timeout=60
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    response.encoding = "utf-8"
    stream = parse_events(response.iter_lines(decode_unicode=True))
    events = []
    for event in stream:  # the opening snapshot, which ends with the status
        events.append(event)
        if event[0] == "status":
            break
    assert events[-1][1]["status"] == "running", events
    open_gate(redis_client, "five")
    events += list(stream)

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


def _instance(api: LiveApi) -> str:
    define(api, chain("two", 2))
    return create(api, {"workflow": "two", "start": False})["id"]  # pending: its stream stays open


def test_a_change_mark_moves_with_every_change_a_stream_reports(live_api):
    instance_id = _instance(live_api)
    db = live_api.app.extensions["orchestrator.engine"]
    seen = [changes.marks(db, [instance_id])[instance_id]]

    def change(statement: Any) -> None:
        with db.begin() as conn:
            conn.execute(statement)
        mark = changes.marks(db, [instance_id])[instance_id]
        assert mark not in seen, statement
        seen.append(mark)

    first = (NodeRow.instance_id == instance_id) & (NodeRow.node_id == "n1")
    # updated_at left alone, as a writer whose clock lags would leave the newest one
    change(update(NodeRow).where(first).values(status="queued"))
    change(update(NodeRow).where(first).values(attempt=NodeRow.attempt + 1))
    line = {"instance_id": instance_id, "level": "info", "message": "x", "created_at": datetime(2026, 1, 1)}
    change(insert(LogRow).values(id=10_000_010, **line))
    change(insert(LogRow).values(id=10_000_005, **line))  # commits after a line with a higher id
    change(update(InstanceRow).where(InstanceRow.id == instance_id).values(status="running"))
    assert changes.marks(db, ["no-such-instance"]) == {}


def test_streams_over_the_cap_get_503_with_retry_after_until_one_closes(db):
    api = LiveApi(Settings.from_env().with_overrides(max_streams=2))
    try:
        path = f"{api.url}/api/v1/instances/{_instance(api)}/events"
        opened = [api.http.get(path, stream=True, timeout=30) for _ in range(2)]
        assert [r.status_code for r in opened] == [200, 200]
        refused = requests.get(path, stream=True, timeout=10)
        assert_error(refused, 503, "TOO_MANY_STREAMS")
        assert int(refused.headers["Retry-After"]) > 0
        assert api.get("/health").status_code == 200  # the cap is on streams only

        opened.pop().close()  # the server sees it gone at its next write (a keepalive at the latest)

        def served_again() -> requests.Response | None:
            response = requests.get(path, stream=True, timeout=10)
            if response.status_code == 200:
                return response
            assert_error(response, 503, "TOO_MANY_STREAMS")
            response.close()
            return None

        opened.append(wait_for(served_again, 30, "the closed stream's slot to be free", interval=0.2))
        first = parse_events(opened[-1].iter_lines(decode_unicode=True))
        assert any(name == "status" for name, _, _ in first)  # the opening snapshot ends with it
        for response in opened:
            response.close()
    finally:
        api.close()


def test_a_stream_sends_what_changed_while_it_waited(live_api):
    """An open stream is woken by the process's watch: a node change and log lines written after it
    opened (one committed after a line with a higher id) arrive without waiting for a full read."""
    instance_id = _instance(live_api)
    db = live_api.app.extensions["orchestrator.engine"]
    response = live_api.http.get(
        f"{live_api.url}/api/v1/instances/{instance_id}/events", stream=True, timeout=30
    )
    response.encoding = "utf-8"
    events = parse_events(response.iter_lines(decode_unicode=True))
    opening = []
    for name, _, _ in events:  # the opening snapshot: both nodes, any log lines, then the status
        opening.append(name)
        if name == "status":
            break
    assert opening.count("node") == 2

    started = time.monotonic()
    now = datetime.now(UTC).replace(tzinfo=None)
    line = {"instance_id": instance_id, "level": "info", "created_at": now}
    with db.begin() as conn:
        conn.execute(
            update(NodeRow)
            .where(NodeRow.instance_id == instance_id, NodeRow.node_id == "n2")
            .values(status="cancelled")
        )
        conn.execute(insert(LogRow).values(id=20_000_010, message="later id", **line))
    with db.begin() as conn:
        conn.execute(insert(LogRow).values(id=20_000_005, message="earlier id", **line))
    received = []
    for name, data, _ in events:
        received.append((name, data.get("nodeId") or data.get("message")))
        if {("node", "n2"), ("log", "later id"), ("log", "earlier id")} <= set(received):
            break
    assert time.monotonic() - started < FULL_POLL_S / 2  # woken, not found by the next full read
    response.close()
