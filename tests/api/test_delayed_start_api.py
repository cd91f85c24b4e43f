"""`startAt` on create (one, batch, the seed's names), `delayed` in the listing, and the 422s of a sleep
with neither `duration` nor `until` and of a `startAt` that is not a time."""

from __future__ import annotations

from datetime import timedelta

from orchestrator.models import utcnow
from tests.api.helpers import GREETING, assert_error, create, define


def test_a_sleep_needs_duration_or_until(live_api):
    body = {"name": "lazy", "version": "1.0.0", "nodes": [{"id": "nap", "type": "sleep"}]}
    error = assert_error(live_api.post("/api/v1/definitions", body), 422)
    assert [d["field"] for d in error["details"]] == ["nodes[0].duration"], error


def test_a_start_at_that_is_not_a_time_is_422_naming_it_on_every_create_path(live_api):
    define(live_api, GREETING)
    data = {"email": "a@example.com"}
    for bad in ("tomorrow", "2026-13-01T00:00:00Z", 5):
        error = assert_error(
            live_api.post("/api/v1/instances", {"workflow": "greeting", "input": data, "startAt": bad}), 422
        )
        assert [d["field"] for d in error["details"]] == ["startAt"], error
    seed = {"workflowName": "greeting", "inputData": data, "startAt": "soon"}
    error = assert_error(live_api.post("/api/v1/instances", seed), 422)
    assert [d["field"] for d in error["details"]] == ["startAt"], error
    batch = live_api.post("/api/v1/instances/batch", {"instances": [seed]}).json()["results"]
    assert batch[0]["status"] == 422 and batch[0]["error"]["details"][0]["field"] == "startAt", batch


def test_delayed_lists_the_pending_instances_whose_start_at_is_to_come(live_api):
    define(live_api, GREETING)
    data = {"email": "a@example.com"}
    later = (utcnow() + timedelta(days=1)).isoformat() + "+00:00"
    delayed = create(live_api, {"workflowName": "greeting", "inputData": data, "startAt": later})
    held = create(live_api, {"workflow": "greeting", "input": data, "start": False})
    past = create(live_api, {"workflow": "greeting", "input": data, "startAt": "2020-01-01T01:00:00+01:00"})
    assert delayed["status"] == "pending" and delayed["startAt"] == later.replace("+00:00", "Z")
    assert past["startAt"] == "2020-01-01T00:00:00Z" and held["startAt"] is None

    def listed(flag: str) -> list[str]:
        response = live_api.get("/api/v1/instances", params={"delayed": flag})
        assert response.status_code == 200, response.text
        return [i["id"] for i in response.json()["instances"]]

    assert listed("true") == [delayed["id"]]
    assert listed("false") == [past["id"], held["id"]]
    error = assert_error(live_api.get("/api/v1/instances", params={"delayed": "maybe"}), 422)
    assert error["details"][0]["field"] == "delayed"
    assert live_api.get(f"/api/v1/instances/{delayed['id']}").json()["startAt"] == delayed["startAt"]
