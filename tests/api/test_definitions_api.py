"""`/api/v1/definitions`: create (201, 200 identical, 409 different, 422 invalid, 400 malformed), read."""

from __future__ import annotations

from tests.api.helpers import GREETING, assert_error, chain


def test_create_is_201_then_200_for_the_same_content_and_409_for_other_content(live_api):
    first = live_api.post("/api/v1/definitions", GREETING)
    assert first.status_code == 201, first.text
    assert first.json()["name"] == "greeting" and first.json()["version"] == "1.0.0"
    again = live_api.post("/api/v1/definitions", GREETING)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    changed = {**GREETING, "description": "other content"}
    error = assert_error(live_api.post("/api/v1/definitions", changed), 409, "CONFLICT")
    assert error["details"][0]["field"] == "version"


def test_an_invalid_definition_is_422_listing_every_problem(live_api):
    body = {
        "name": "bad",
        "nodes": [
            {"id": "a", "executor": "no.such.executor"},
            {"id": "a", "executor": "noop", "dependsOn": ["missing"]},
        ],
    }
    error = assert_error(live_api.post("/api/v1/definitions", body), 422, "VALIDATION_ERROR")
    codes = {d["code"] for d in error["details"]}
    assert {"UNKNOWN_EXECUTOR", "DUPLICATE_NODE", "UNKNOWN_DEPENDENCY"} <= codes, error


def test_malformed_json_is_400_and_a_json_array_is_422(live_api):
    headers = {"Content-Type": "application/json"}
    bad = live_api.http.post(live_api.url + "/api/v1/definitions", data=b'{"name": ', headers=headers)
    assert_error(bad, 400, "BAD_REQUEST")
    assert_error(live_api.http.post(live_api.url + "/api/v1/definitions", headers=headers), 400)
    assert_error(live_api.post("/api/v1/definitions", [1, 2]), 422)


def test_list_latest_and_one_version(live_api):
    for version in ("1.0.0", "1.10.0", "1.2.0"):
        assert live_api.post("/api/v1/definitions", {**chain("multi", 1), "version": version}).ok
    listed = live_api.get("/api/v1/definitions").json()["definitions"]
    assert [d["version"] for d in listed if d["name"] == "multi"] == ["1.10.0", "1.2.0", "1.0.0"]
    assert live_api.get("/api/v1/definitions/multi").json()["version"] == "1.10.0"
    assert live_api.get("/api/v1/definitions/multi/1.2.0").json()["version"] == "1.2.0"
    assert live_api.get("/api/v1/definitions/multi/latest").json()["version"] == "1.10.0"
    assert_error(live_api.get("/api/v1/definitions/nothing"), 404, "WORKFLOW_NOT_FOUND")
    assert_error(live_api.get("/api/v1/definitions/multi/9.9.9"), 404, "WORKFLOW_NOT_FOUND")


def test_values_the_store_cannot_hold_are_422_not_a_500(live_api):
    huge = 10**30
    for body in (
        {"name": "big", "timeout": huge, "nodes": [{"id": "a", "executor": "noop"}]},
        {"name": "big", "nodes": [{"id": "a", "executor": "noop", "timeout": huge}]},
        {"name": "big", "nodes": [{"id": "a", "executor": "noop", "retryDelay": 10**400}]},
        {"name": "big", "description": "é" * 40_000, "nodes": [{"id": "a", "executor": "noop"}]},
        {
            "name": "big",
            "inputs": {"a": {"pattern": "(" * 600 + ")" * 600}},
            "nodes": [{"id": "a", "executor": "noop"}],
        },
    ):
        assert_error(live_api.post("/api/v1/definitions", body), 422, "VALIDATION_ERROR")
