"""Reading request bodies and query strings into typed values, naming the field of every problem."""

from __future__ import annotations

from typing import Any

from flask import request

from api.errors import BadRequest
from orchestrator.errors import Problem, ValidationError
from orchestrator.instances import PRIORITIES, InstanceRequest

_INSTANCE_FIELDS = {
    "workflow",
    "workflowName",
    "version",
    "input",
    "priority",
    "externalId",
    "tags",
    "timeout",
    "maxRetries",
    "createdBy",
    "parentInstanceId",
    "callbackUrl",
    "queue",
    "start",
}


def json_body() -> Any:
    """The parsed JSON body; raises BadRequest (400) when it is not JSON."""
    data = request.get_json(silent=True, force=True)
    if data is None and request.get_data(cache=True):
        raise BadRequest(
            "the request body is not valid JSON", [Problem("body", "malformed JSON", "BAD_REQUEST")]
        )
    return data


def json_object() -> dict[str, Any]:
    data = json_body()
    if not isinstance(data, dict):
        raise BadRequest(
            "the request body must be a JSON object",
            [Problem("body", "expected a JSON object", "BAD_REQUEST")],
        )
    return data


def _type_problem(field: str, expected: str) -> Problem:
    return Problem(field, f"must be {expected}", "TYPE_MISMATCH")


# JSON field -> (accepted type, how to name it in an error)
_TYPES: dict[str, tuple[type, str]] = {
    "workflow": (str, "a non-empty string"),
    "workflowName": (str, "a non-empty string"),
    "version": (str, "a string"),
    "input": (dict, "an object"),
    "priority": (str, "a string"),
    "externalId": (str, "a string"),
    "tags": (dict, "an object of strings"),
    "timeout": (int, "an integer (milliseconds)"),
    "maxRetries": (int, "an integer"),
    "createdBy": (str, "a string"),
    "parentInstanceId": (str, "a string"),
    "callbackUrl": (str, "a string"),
    "queue": (str, "a string"),
    "start": (bool, "a boolean"),
}


def _typed_fields(body: dict[str, Any], prefix: str, problems: list[Problem]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in body.items():
        if key not in _TYPES:
            problems.append(Problem(f"{prefix}{key}", "unknown field", "VALIDATION_ERROR"))
        elif value is not None:
            kind, expected = _TYPES[key]
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                problems.append(_type_problem(f"{prefix}{key}", expected))
            else:
                values[key] = value
    return values


def _constraints(v: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for every value of the right type that is still out of range."""
    bad = []
    if v.get("priority", "normal") not in PRIORITIES:
        bad.append(("priority", f"must be one of {', '.join(PRIORITIES)}"))
    if "externalId" in v and not 0 < len(v["externalId"]) <= 255:
        bad.append(("externalId", "must be 1 to 255 characters"))
    bad += [
        (f"tags.{k}", "must be a string of at most 1,024 characters")
        for k, t in v.get("tags", {}).items()
        if not isinstance(t, str) or len(k) > 128 or len(t) > 1024
    ]
    if v.get("timeout", 1) <= 0:
        bad.append(("timeout", "must be positive"))
    if not 0 <= v.get("maxRetries", 0) <= 100:
        bad.append(("maxRetries", "must be between 0 and 100"))
    if not str(v.get("callbackUrl", "http://")).startswith(("http://", "https://")):
        bad.append(("callbackUrl", "must be an http(s) URL"))
    return bad


def instance_request(body: Any, prefix: str = "") -> InstanceRequest:
    """Validate a create-instance body; raises ValidationError listing every problem."""
    if not isinstance(body, dict):
        raise ValidationError("invalid instance request", [_type_problem(prefix or "body", "an object")])
    problems: list[Problem] = []
    v = _typed_fields(body, prefix, problems)
    workflow = v.get("workflow", v.get("workflowName"))
    if not workflow and not any(p.field in (f"{prefix}workflow", f"{prefix}workflowName") for p in problems):
        problems.append(Problem(f"{prefix}workflow", "is required", "REQUIRED_PARAMETER"))
    problems += [
        Problem(f"{prefix}{field}", message, "VALIDATION_ERROR") for field, message in _constraints(v)
    ]
    if problems:
        raise ValidationError("invalid instance request", problems)
    return InstanceRequest(
        workflow=str(workflow),
        version=v.get("version"),
        input=v.get("input", {}),
        priority=v.get("priority", "normal"),
        external_id=v.get("externalId"),
        tags=v.get("tags", {}),
        timeout_ms=v.get("timeout"),
        max_retries=v.get("maxRetries"),
        created_by=v.get("createdBy"),
        parent_instance_id=v.get("parentInstanceId"),
        callback_url=v.get("callbackUrl"),
        queue=v.get("queue"),
        start=v.get("start", True),
    )
