"""Definitions and assertions shared by the HTTP API tests."""

from __future__ import annotations

from typing import Any

import requests

from tests.support.fixtures import LiveApi

JSON = {"Content-Type": "application/json"}  # for bodies sent as raw bytes


def chain(name: str, length: int, executor: str = "tests.count", **config: Any) -> dict[str, Any]:
    """A sequential workflow n1 -> n2 -> ... of `length` nodes of one executor."""
    return {
        "name": name,
        "version": "1.0.0",
        "inputs": {"who": {"type": "string"}},
        "nodes": [
            {
                "id": f"n{i}",
                "type": "task",
                "executor": executor,
                "config": dict(config),
                **({"dependsOn": [f"n{i - 1}"]} if i > 1 else {}),
            }
            for i in range(1, length + 1)
        ],
    }


GREETING = {
    "name": "greeting",
    "version": "1.0.0",
    "inputs": {"email": {"type": "string", "required": True}, "count": {"type": "integer", "min": 1}},
    "nodes": [{"id": "hello", "type": "task", "executor": "noop", "config": {"to": "${input.email}"}}],
}


def define(api: LiveApi, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/api/v1/definitions", body)
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


def create(api: LiveApi, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    response = api.post("/api/v1/instances", body)
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


def assert_error(response: requests.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is the JSON error of SPEC section 5 with this status (and error code)."""
    assert response.status_code == status, f"{response.status_code} {response.text[:500]}"
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["message"], str) and error["message"]
    for detail in error["details"]:
        assert set(detail) == {"field", "message", "code"}, detail
    if code is not None:
        assert error["code"] == code, error
    return error  # type: ignore[no-any-return]
