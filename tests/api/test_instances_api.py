"""`/api/v1/instances`: create, batch, list with filters and cursors, read, status, nodes, logs, errors."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from orchestrator.models import InstanceRow
from tests.api.helpers import GREETING, JSON, assert_error, chain, create, define


def test_create_returns_201_with_the_instance_and_it_can_be_read(live_api):
    define(live_api, GREETING)
    body = {"workflow": "greeting", "input": {"email": "a@example.com"}, "tags": {"team": "ops"}}
    created = create(live_api, body)
    assert created["status"] == "pending" and created["workflow"] == "greeting"
    instance_id = created["id"]

    instance = live_api.get(f"/api/v1/instances/{instance_id}").json()
    assert instance["input"] == {"email": "a@example.com"}
    assert instance["tags"] == {"team": "ops"} and instance["priority"] == "normal"
    status = live_api.get(f"/api/v1/instances/{instance_id}/status").json()
    assert status["totalNodes"] == 1 and status["progress"] == 0
    nodes = live_api.get(f"/api/v1/instances/{instance_id}/nodes").json()["nodes"]
    assert [n["nodeId"] for n in nodes] == ["hello"]
    logs = live_api.get(f"/api/v1/instances/{instance_id}/logs").json()["logs"]
    assert logs[0]["message"].startswith("instance created")


def test_the_create_reply_shows_what_a_read_of_the_instance_shows(live_api):
    # the reply is built from the row as written, not read back: it must not drift from a read
    define(live_api, GREETING)
    body = {
        "workflow": "greeting",
        "input": {"email": "a@example.com"},
        "tags": {"team": "ops"},
        "externalId": "reply-1",
        "priority": "high",
        "createdBy": "tester",
        "start": False,
    }
    created = create(live_api, body)
    read = live_api.get(f"/api/v1/instances/{created['id']}").json()
    assert created == {key: read[key] for key in created}, (created, read)
    assert created["externalId"] == "reply-1" and created["startedAt"] is None
    again = live_api.post("/api/v1/instances", body)  # found by externalId: read, not written
    assert again.status_code == 200 and again.json() == created


def test_create_errors_name_their_fields(live_api):
    define(live_api, GREETING)
    assert_error(live_api.post("/api/v1/instances", {"workflow": "nope"}), 404, "WORKFLOW_NOT_FOUND")
    error = assert_error(live_api.post("/api/v1/instances", {"workflow": "greeting", "input": {}}), 422)
    assert error["details"][0]["field"] == "input.email", error
    body = {"workflow": "greeting", "input": {"email": 5}, "priority": "urgent", "tags": {"a b": "x"}, "x": 1}
    error = assert_error(live_api.post("/api/v1/instances", body), 422)
    fields = {d["field"] for d in error["details"]}
    assert {"priority", "tags.a b", "x"} <= fields, error
    assert_error(live_api.post("/api/v1/instances", {"workflow": "greeting", "timeout": 10**30}), 422)
    assert_error(live_api.post("/api/v1/instances", {"input": {}}), 422)
    error = assert_error(live_api.post("/api/v1/instances", {"workflow": "greeting", "version": ""}), 422)
    assert [d["field"] for d in error["details"]] == ["version"], error  # not "" taken for `latest`
    assert_error(live_api.post("/api/v1/instances", ["greeting"]), 422)
    # a schedule's key taken by a request would stand for one of its fire times
    body = {"workflow": "greeting", "input": {"email": "a@x"}, "externalId": "schedule:nightly:0"}
    error = assert_error(live_api.post("/api/v1/instances", body), 422)
    assert [d["field"] for d in error["details"]] == ["externalId"], error


def test_malformed_bodies_are_400(live_api):
    headers = {"Content-Type": "application/json"}
    for raw in (b"{", b"not json", b'{"workflow": NaN}', b'{"timeout": 1e999}', b'{"a": "\\ud800"}', b"\xff"):
        response = live_api.http.post(live_api.url + "/api/v1/instances", data=raw, headers=headers)
        assert_error(response, 400, "BAD_REQUEST")


def test_deeply_nested_bodies_are_refused_before_the_store(live_api):
    define(live_api, GREETING)
    deep: dict = {}
    for _ in range(40):
        deep = {"a": deep}
    body = {"workflow": "greeting", "input": {"email": "x", "deep": deep}}
    assert_error(live_api.post("/api/v1/instances", body), 422, "VALIDATION_ERROR")
    very_deep = b"[" * 100_000 + b"]" * 100_000
    response = live_api.http.post(live_api.url + "/api/v1/instances", data=very_deep, headers=JSON)
    assert response.status_code in (400, 422), response.text


def test_bodies_over_the_limit_are_413_with_or_without_content_length(live_api):
    limit = live_api.app.config["MAX_CONTENT_LENGTH"]
    big = b'{"workflow": "' + b"x" * limit + b'"}'
    assert_error(live_api.http.post(live_api.url + "/api/v1/instances", data=big), 413, "PAYLOAD_TOO_LARGE")

    def chunks():
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    chunked = live_api.http.post(live_api.url + "/api/v1/instances", data=chunks(), headers=JSON)
    assert_error(chunked, 413, "PAYLOAD_TOO_LARGE")
    small = b'{"workflow": "nope"}'
    sent = live_api.http.post(live_api.url + "/api/v1/instances", data=iter([small]), headers=JSON)
    assert sent.status_code == 404


def test_unknown_routes_are_404_and_wrong_methods_405_in_json(live_api):
    assert_error(live_api.get("/api/v1/nothing-here"), 404, "NOT_FOUND")
    assert_error(live_api.get("/nothing"), 404, "NOT_FOUND")
    response = live_api.http.delete(live_api.url + "/api/v1/instances")
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert {"GET", "POST"} <= set(response.headers["Allow"].replace(" ", "").split(","))
    batch = live_api.get("/api/v1/instances/batch")  # not an instance id: the path is POST only
    assert_error(batch, 405, "METHOD_NOT_ALLOWED")
    assert "GET" not in batch.headers["Allow"]
    for path in ("", "/status", "/nodes", "/logs", "/events"):
        assert_error(live_api.get(f"/api/v1/instances/no-such-id{path}"), 404, "NOT_FOUND")


def test_batch_creates_each_item_on_its_own(live_api, db):
    define(live_api, GREETING)
    items = [
        {"workflow": "greeting", "input": {"email": "a@x"}, "externalId": "batch-1"},
        {"workflow": "greeting", "input": {}},
        {"workflow": "missing"},
        "not an object",
        {"workflow": "greeting", "input": {"email": "a@x"}, "externalId": "batch-1"},
        {"workflow": "greeting", "input": {"email": "b@x"}},
    ]
    response = live_api.post("/api/v1/instances/batch", {"instances": items})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert [r["status"] for r in results] == [201, 422, 404, 422, 200, 201]
    assert results[4]["instance"]["id"] == results[0]["instance"]["id"]
    assert results[1]["error"]["details"][0]["field"] == "input.email"
    assert results[2]["error"]["code"] == "WORKFLOW_NOT_FOUND"
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(InstanceRow)).scalar() == 2
    assert_error(live_api.post("/api/v1/instances/batch", {"instances": []}), 422)
    assert_error(live_api.post("/api/v1/instances/batch", {"instances": [{}] * 101}), 422)
    assert_error(live_api.post("/api/v1/instances/batch", {"items": []}), 422)


def test_list_filters_by_status_workflow_tags_and_external_id(live_api):
    define(live_api, GREETING)
    define(live_api, chain("other", 1))
    a = create(
        live_api, {"workflow": "greeting", "input": {"email": "a"}, "tags": {"env": "prod", "team": "é😀"}}
    )
    b = create(
        live_api, {"workflow": "greeting", "input": {"email": "b"}, "tags": {"env": "dev"}, "start": False}
    )
    c = create(live_api, {"workflow": "other", "externalId": "ext-1", "tags": {"env": "prod"}})
    live_api.post(f"/api/v1/instances/{a['id']}/cancel")

    def ids(query: str) -> list[str]:
        response = live_api.get("/api/v1/instances" + query)
        assert response.status_code == 200, response.text
        return [i["id"] for i in response.json()["instances"]]

    assert ids("") == [c["id"], b["id"], a["id"]]
    assert ids("?workflow=greeting") == [b["id"], a["id"]]
    assert ids("?tag=env:prod") == [c["id"], a["id"]]
    assert ids("?tag=env:prod&tag=team:é😀") == [a["id"]]
    assert ids("?tag=env:prod&tag=") == [c["id"], a["id"]]  # an empty parameter is no filter
    assert ids("?tag=env:PROD") == []
    assert ids("?tag=missing:x") == []
    assert ids("?externalId=ext-1") == [c["id"]]
    assert ids("?status=cancelled") == [a["id"]]
    assert ids("?status=cancelled,pending&workflow=greeting") == [b["id"], a["id"]]
    assert ids("?workflow=' OR '1'='1") == []
    assert ids("?tag=env:prod' OR 1=1 --") == []
    for bad in (
        "?status=bogus",
        "?limit=0",
        "?limit=501",
        "?limit=-1",
        "?limit=abc",
        "?cursor=%%%",
        "?tag=nocolon",
    ):
        assert_error(live_api.get("/api/v1/instances" + bad), 422, "VALIDATION_ERROR")


def test_crafted_cursors_are_422_or_an_empty_page_never_a_500(live_api):
    def cursor(value) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()

    for odd in (["0001-01-01T00:00:00", "x"], ["9999-12-31T23:59:59.999999", "' OR 1=1 --"]):
        response = live_api.get("/api/v1/instances", params={"cursor": cursor(odd)})
        assert response.status_code == 200 and response.json()["instances"] == [], response.text
    for bad in ([1, 2], ["2020-01-01", None], ["not a time", "x"], {"a": 1}, "x", [], ["a", "b", "c"]):
        assert_error(
            live_api.get("/api/v1/instances", params={"cursor": cursor(bad)}), 422, "VALIDATION_ERROR"
        )
    assert_error(live_api.get("/api/v1/instances", params={"cursor": "A" * 600}), 422)


def test_cursor_pages_are_stable_while_instances_are_created(live_api):
    define(live_api, GREETING)
    first = [create(live_api, {"workflow": "greeting", "input": {"email": str(i)}})["id"] for i in range(7)]
    seen: list[str] = []
    page = live_api.get("/api/v1/instances?limit=3").json()
    seen += [i["id"] for i in page["instances"]]
    while page["nextCursor"]:
        # new instances arrive between pages: they sort before the cursor and do not shift the walk
        create(live_api, {"workflow": "greeting", "input": {"email": "new"}})
        page = live_api.get(f"/api/v1/instances?limit=3&cursor={page['nextCursor']}").json()
        seen += [i["id"] for i in page["instances"]]
    assert seen == list(reversed(first))


def test_log_filters(live_api):
    define(live_api, GREETING)
    instance_id = create(live_api, {"workflow": "greeting", "input": {"email": "a"}, "start": False})["id"]
    assert live_api.post(f"/api/v1/instances/{instance_id}/cancel", {"reason": "test"}).status_code == 200
    path = f"/api/v1/instances/{instance_id}/logs"
    everything = live_api.get(path).json()["logs"]
    assert len(everything) >= 2
    assert [line["id"] for line in live_api.get(f"{path}?limit=1").json()["logs"]] == [everything[0]["id"]]
    after = live_api.get(f"{path}?afterId={everything[0]['id']}").json()["logs"]
    assert [line["id"] for line in after] == [line["id"] for line in everything[1:]]
    assert live_api.get(f"{path}?level=error").json()["logs"] == []
    assert live_api.get(f"{path}?nodeId=hello").json()["logs"] == []
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert live_api.get(path, params={"since": future}).json()["logs"] == []
    assert len(live_api.get(path, params={"until": future}).json()["logs"]) == len(everything)
    assert len(live_api.get(path, params={"since": "2000-01-01T00:00:00Z"}).json()["logs"]) == len(everything)
    # any date-time the document allows is a time: outside what the store holds it selects all or nothing
    for early in ("1969-12-31T23:59:59Z", "0001-01-01T00:00:00+05:00"):
        assert len(live_api.get(path, params={"since": early}).json()["logs"]) == len(everything)
        assert live_api.get(path, params={"until": early}).json()["logs"] == []
    for late in ("9999-12-31T23:00:00-05:00", "9999-12-31T23:59:59Z"):
        assert live_api.get(path, params={"since": late}).json()["logs"] == []
        assert len(live_api.get(path, params={"until": late}).json()["logs"]) == len(everything)
    bad_values = ("level=loud", "since=yesterday", "limit=0", "limit=99999999999999999999", "afterId=-1")
    for bad in (*bad_values, f"afterId={2**63}", "until=2024-13-01T00:00:00Z"):
        assert_error(live_api.get(f"{path}?{bad}"), 422, "VALIDATION_ERROR")
