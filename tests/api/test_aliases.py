"""The seed's names of three create fields (SPEC section 2c): `workflowName`, `workflowVersion` and
`inputData` mean `workflow`, `version` and `input`; one field given under both names is a 422."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.helpers import GREETING, assert_error, create, define

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "workflows"
GREETING_2 = {**GREETING, "version": "2.0.0"}


def _instance(live_api, instance_id: str) -> dict:
    return live_api.get(f"/api/v1/instances/{instance_id}").json()  # type: ignore[no-any-return]


def test_each_seed_name_stands_for_its_field(live_api):
    define(live_api, GREETING)
    define(live_api, GREETING_2)  # so that a version asked for is not the latest one by chance
    by_name = create(live_api, {"workflowName": "greeting", "input": {"email": "a@x"}})
    assert (by_name["workflow"], by_name["version"]) == ("greeting", "2.0.0")
    by_version = create(
        live_api, {"workflow": "greeting", "workflowVersion": "1.0.0", "input": {"email": "b"}}
    )
    assert by_version["version"] == "1.0.0"
    by_input = create(live_api, {"workflow": "greeting", "inputData": {"email": "c@x", "count": 2}})
    assert _instance(live_api, by_input["id"])["input"] == {"email": "c@x", "count": 2}


def test_the_seeds_own_create_request(live_api):
    """`WorkflowInstanceCreateRequest` of the design document, for its user-onboarding workflow."""
    define(live_api, json.loads((EXAMPLES / "user-onboarding.json").read_text()))
    sample = json.loads((EXAMPLES / "sample-inputs.json").read_text())["user-onboarding"]
    request = {
        "workflowName": "user-onboarding",
        "workflowVersion": "1.0.0",
        "inputData": sample,
        "priority": "high",
        "timeout": 1_800_000,
        "maxRetries": 2,
        "createdBy": "hr-portal",
        "tags": {"department": "rnd"},
    }
    created = create(live_api, request)
    instance = _instance(live_api, created["id"])
    assert (instance["workflow"], instance["version"], instance["input"]) == (
        "user-onboarding",
        "1.0.0",
        sample,
    )
    assert (instance["priority"], instance["timeout"], instance["maxRetries"]) == ("high", 1_800_000, 2)
    assert (instance["createdBy"], instance["tags"]) == ("hr-portal", {"department": "rnd"})


@pytest.mark.parametrize(
    ("field", "alias", "value"),
    [
        ("workflow", "workflowName", "greeting"),
        ("version", "workflowVersion", "1.0.0"),
        ("input", "inputData", {"email": "a@x"}),
    ],
)
def test_a_field_under_both_names_is_a_422_naming_it(live_api, field, alias, value):
    define(live_api, GREETING)
    body = {"workflow": "greeting", "input": {"email": "a@x"}, field: value, alias: value}
    error = assert_error(live_api.post("/api/v1/instances", body), 422, "VALIDATION_ERROR")
    assert [d["field"] for d in error["details"]] == [field], error
    assert field in error["details"][0]["message"] and alias in error["details"][0]["message"]
    # null is no value: one name null and the other given is the field given once
    create(live_api, {**body, alias: None})
    assert live_api.get("/api/v1/instances").json()["instances"][0]["workflow"] == "greeting"


def test_errors_name_the_field_as_the_request_did(live_api):
    define(live_api, GREETING)
    missing = {"workflowName": "greeting", "inputData": {}}
    error = assert_error(live_api.post("/api/v1/instances", missing), 422)
    assert [(d["field"], d["code"]) for d in error["details"]] == [("inputData.email", "REQUIRED_PARAMETER")]
    unknown = {"workflowName": "greeting", "workflowVersion": "9.9.9"}
    error = assert_error(live_api.post("/api/v1/instances", unknown), 404, "WORKFLOW_NOT_FOUND")
    assert [d["field"] for d in error["details"]] == ["workflowVersion"], error
    error = assert_error(live_api.post("/api/v1/instances", {"workflowName": "nope"}), 404)
    assert [d["field"] for d in error["details"]] == ["workflowName"], error
    typed = {"workflowName": 5, "workflowVersion": "", "inputData": []}
    error = assert_error(live_api.post("/api/v1/instances", typed), 422)
    assert {d["field"] for d in error["details"]} == {"workflowName", "workflowVersion", "inputData"}, error


def test_batch_items_take_the_seed_names_and_each_answers_for_itself(live_api):
    define(live_api, GREETING)
    items = [
        {"workflowName": "greeting", "workflowVersion": "1.0.0", "inputData": {"email": "a@x"}},
        {"workflow": "greeting", "workflowName": "greeting", "inputData": {"email": "b@x"}},
        {"workflowName": "greeting", "inputData": {"email": "c@x"}, "input": {"email": "c@x"}},
    ]
    response = live_api.post("/api/v1/instances/batch", {"instances": items})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 422, 422]
    assert results[0]["instance"]["workflow"] == "greeting"
    assert [d["field"] for d in results[1]["error"]["details"]] == ["workflow"]
    assert [d["field"] for d in results[2]["error"]["details"]] == ["input"]
