"""Create refuses an input that lacks a value a node's template needs (no default, no `||`
fallback): 422 with a REQUIRED_PARAMETER detail naming the path and the node, before anything runs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.api.helpers import assert_error, create, define

WORKFLOWS = Path(__file__).resolve().parents[2] / "examples" / "workflows"
ONBOARDING = json.loads((WORKFLOWS / "user-onboarding.json").read_text())
SAMPLE = json.loads((WORKFLOWS / "sample-inputs.json").read_text())["user-onboarding"]


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


def _onboarding(name: str, permissions: str | None = None, **extra: Any) -> dict[str, Any]:
    """The seed's user-onboarding under another name, its setup-permissions template replaced."""
    body = copy.deepcopy(ONBOARDING) | {"name": name, **extra}
    if permissions is not None:
        node = next(n for n in body["nodes"] if n["id"] == "setup-permissions")
        node["config"]["permissions"] = permissions
    return body


def _required(error: dict[str, Any]) -> dict[str, str]:
    return {d["field"]: d["message"] for d in error["details"] if d["code"] == "REQUIRED_PARAMETER"}


def test_a_missing_input_a_node_needs_is_422_naming_the_path_and_the_node(live_api, db):
    define(live_api, ONBOARDING)
    body = {"workflow": "user-onboarding", "input": _without(SAMPLE, "permissions"), "start": False}
    error = assert_error(live_api.post("/api/v1/instances", body), 422)
    required = _required(error)
    assert list(required) == ["input.permissions"], error
    assert "setup-permissions" in required["input.permissions"]
    assert "setup-permissions" in error["message"] and "input.permissions" in error["message"]
    assert live_api.get("/api/v1/instances").json()["instances"] == []  # nothing was created

    create(live_api, {"workflow": "user-onboarding", "input": SAMPLE, "start": False})


def test_a_fallback_or_a_schema_default_satisfies_the_need(live_api):
    define(live_api, _onboarding("onboarding-fallback", permissions='${input.permissions || "read"}'))
    define(
        live_api,
        _onboarding("onboarding-default", inputs={"permissions": {"type": "array", "default": ["read"]}}),
    )
    data = _without(SAMPLE, "permissions")
    for workflow in ("onboarding-fallback", "onboarding-default"):
        create(live_api, {"workflow": workflow, "input": data, "start": False})


def test_deeper_paths_when_conditions_and_subworkflow_inputs(live_api):
    define(
        live_api,
        {
            "name": "needs",
            "version": "1.0.0",
            "nodes": [
                {"id": "to", "type": "task", "executor": "noop", "config": {"city": "${input.address.city}"}},
                # skipped unless input.notify: its config needs input.phone only then
                {
                    "id": "sms",
                    "type": "task",
                    "executor": "noop",
                    "when": "${input.notify}",
                    "config": {"to": "${input.phone}"},
                },
                {
                    "id": "child",
                    "type": "subworkflow",
                    "config": {"workflow": {"name": "needs"}, "input": {"address": "${input.address}"}},
                },
            ],
        },
    )

    def post(data: dict[str, Any]) -> Any:
        return live_api.post("/api/v1/instances", {"workflow": "needs", "input": data, "start": False})

    error = assert_error(post({}), 422)
    assert list(_required(error)) == ["input.address.city", "input.address"]
    assert "'child'" in _required(error)["input.address"]
    assert list(_required(assert_error(post({"address": {}}), 422))) == ["input.address.city"]
    assert post({"address": {"city": "Oslo"}}).status_code == 201
    error = assert_error(post({"address": {"city": "Oslo"}, "notify": True}), 422)
    assert list(_required(error)) == ["input.phone"] and "'sms'" in error["details"][0]["message"]
    assert post({"address": {"city": "Oslo"}, "notify": True, "phone": "123"}).status_code == 201


def test_each_batch_item_is_checked_on_its_own(live_api):
    define(live_api, ONBOARDING)
    items = [
        {"workflow": "user-onboarding", "input": SAMPLE, "start": False},
        {"workflow": "user-onboarding", "input": _without(SAMPLE, "permissions"), "start": False},
    ]
    response = live_api.post("/api/v1/instances/batch", {"instances": items})
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert first["status"] == 201
    assert second["status"] == 422
    assert _required(second["error"]).keys() == {"input.permissions"}
    assert "setup-permissions" in _required(second["error"])["input.permissions"]
