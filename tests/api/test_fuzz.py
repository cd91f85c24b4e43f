"""Hostile input on every path: malformed JSON, wrong types, unknown fields, unicode, SQL metacharacters,
huge and negative numbers, and a 10 MB body. Whatever comes in, the answer is never a 5xx, and every
error is the JSON error of SPEC section 5. No worker runs: instances stay pending or queued."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.helpers import GREETING, assert_error, create, define

SQL = [
    "' OR '1'='1",
    "'; DROP TABLE workflow_instances; --",
    '" OR ""="',
    "1) UNION SELECT id FROM workflow_instances --",
    "%",
    "_",
    "\\",
    "\x00",
    '$."a"',
    "${input.x}",
    "../../etc/passwd",
    "😀é中文",
    "-1",
    "0",
    "99999999999999999999999",
    "1e999",
    "NaN",
    "null",
    "true",
    "",
    " ",
    "a:b:c",
    "env:prod",
    "2024-01-01T00:00:00Z",
    "0001-01-01",
    "9999-12-31T23:00:00-05:00",
]
text = st.one_of(st.sampled_from(SQL), st.text(max_size=40))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
instance_bodies = st.fixed_dictionaries(
    {},
    optional={
        "workflow": st.one_of(st.just("greeting"), text, json_values),
        "version": st.one_of(st.just("1.0.0"), text, json_values),
        "input": st.one_of(st.fixed_dictionaries({"email": text}), json_values),
        "priority": st.one_of(st.sampled_from(["low", "high", "critical"]), json_values),
        "externalId": st.one_of(text, json_values),
        "tags": st.one_of(st.dictionaries(text, text, max_size=3), json_values),
        "timeout": json_values,
        "maxRetries": json_values,
        "createdBy": json_values,
        "parentInstanceId": json_values,
        "callbackUrl": st.one_of(st.just("http://127.0.0.1:9/x"), json_values),
        "queue": json_values,
        "start": st.one_of(st.just(False), json_values),
        "unknownField": json_values,
    },
)
nodes = st.fixed_dictionaries(
    {"id": st.one_of(st.sampled_from(["a", "b"]), text, json_values)},
    optional={
        "type": st.one_of(st.sampled_from(["task", "subworkflow"]), json_values),
        "executor": st.one_of(st.sampled_from(["noop", "sleep", "tests.count"]), text, json_values),
        "dependsOn": st.one_of(st.lists(st.sampled_from(["a", "b"]), max_size=2), json_values),
        "config": st.one_of(st.dictionaries(text, st.one_of(text, json_values), max_size=3), json_values),
        "retries": json_values,
        "retryDelay": st.one_of(st.integers(min_value=0), json_values),
        "timeout": st.one_of(st.integers(min_value=1), json_values),
        "queue": st.one_of(text, json_values),
        "when": st.one_of(text, json_values),
    },
)
input_specs = st.dictionaries(
    text,
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(st.sampled_from(["string", "integer", "number", "object"]), json_values),
            "required": json_values,
            "default": json_values,
            "enum": json_values,
            "pattern": text,
            "min": json_values,
            "maxLength": json_values,
        },
    ),
    max_size=3,
)
definitions = st.fixed_dictionaries(
    {"name": st.one_of(st.just("fz"), text), "nodes": st.lists(nodes, max_size=3)},
    optional={
        "version": st.one_of(st.sampled_from(["1.0.0", "2.0.0-rc.1", "latest"]), text, json_values),
        "timeout": st.one_of(st.integers(min_value=1), json_values),
        "inputs": st.one_of(input_specs, json_values),
        "description": json_values,
    },
)
malformed = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"{", b"[", b'{"a":', b"NaN", b'{"a": Infinity}', b'"\\ud800"', b"\xff\xfe", b"{}" * 3]),
)
bodies = st.one_of(
    definitions.map(lambda b: json.dumps(b).encode()),
    instance_bodies.map(lambda b: json.dumps(b).encode()),
    st.dictionaries(text, json_values, max_size=3).map(lambda b: json.dumps(b).encode()),
    st.builds(lambda items: json.dumps({"instances": items}).encode(), st.lists(instance_bodies, max_size=4)),
    st.builds(lambda node: json.dumps({"fromNode": node, "reason": node}).encode(), json_values),
    json_values.map(lambda v: json.dumps(v).encode()),
    malformed,
)
query_names = st.sampled_from(
    [
        "status",
        "workflow",
        "tag",
        "externalId",
        "limit",
        "cursor",
        "nodeId",
        "level",
        "since",
        "until",
        "afterId",
        "x",
    ]
)
queries = st.lists(st.tuples(query_names, st.one_of(text, st.integers().map(str))), max_size=5)

ROUTES = [
    ("POST", "/api/v1/definitions"),
    ("GET", "/api/v1/definitions"),
    ("GET", "/api/v1/definitions/{name}"),
    ("GET", "/api/v1/definitions/{name}/{name}"),
    ("POST", "/api/v1/instances"),
    ("POST", "/api/v1/instances/batch"),
    ("GET", "/api/v1/instances"),
    ("GET", "/api/v1/instances/{id}"),
    ("GET", "/api/v1/instances/{id}/status"),
    ("GET", "/api/v1/instances/{id}/nodes"),
    ("GET", "/api/v1/instances/{id}/logs"),
    ("GET", "/api/v1/instances/{unknown}/events"),
    ("POST", "/api/v1/instances/{id}/start"),
    ("POST", "/api/v1/instances/{id}/pause"),
    ("POST", "/api/v1/instances/{id}/resume"),
    ("POST", "/api/v1/instances/{id}/cancel"),
    ("POST", "/api/v1/instances/{id}/retry"),
    ("POST", "/api/v1/instances/{id}/signals/{name}"),
    ("GET", "/api/v1/workers"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/health"),
    ("PUT", "/api/v1/instances/{id}"),
    ("DELETE", "/api/v1/definitions"),
]


@pytest.fixture()
def target(live_api) -> dict[str, Any]:
    define(live_api, GREETING)
    instance_id = create(live_api, {"workflow": "greeting", "input": {"email": "a@x"}, "start": False})["id"]
    return {"api": live_api, "id": instance_id}


def check(response: requests.Response) -> None:
    assert response.status_code < 500, f"{response.status_code} {response.text[:500]}"
    if response.status_code >= 400:
        assert_error(response, response.status_code)


@pytest.mark.parametrize(("method", "template"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, query=queries, segment=text, real_id=st.booleans())
def test_no_input_makes_a_5xx(target, method, template, body, query, segment, real_id):
    api = target["api"]
    hostile = quote(segment, safe="") or "x"
    path = template.format(
        id=target["id"] if real_id else hostile, name="greeting" if real_id else hostile, unknown=hostile
    )
    response = api.http.request(
        method,
        api.url + path,
        params=query,
        data=body if method in ("POST", "PUT", "DELETE") else None,
        headers={"Content-Type": "application/json"},
        timeout=30,
        stream=path.endswith("/events"),
    )
    with response:
        if path.endswith("/events"):
            assert response.status_code in (404, 422), response.status_code
        check(response)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(definition=definitions, data=json_values)
def test_any_accepted_definition_can_be_instantiated(live_api, definition, data):
    """Whatever a definition holds, once it is accepted, creating an instance of it is never a 5xx."""
    stored = live_api.post("/api/v1/definitions", definition)
    check(stored)
    if stored.status_code in (200, 201):
        version = stored.json()["version"]
        for body in ({"input": data}, {}):
            check(
                live_api.post(
                    "/api/v1/instances", {"workflow": stored.json()["name"], "version": version, **body}
                )
            )


def test_a_10_mb_body_is_413_on_every_post_path(target):
    api = target["api"]
    ten_mb = b'{"input": "' + b"x" * 10_000_000 + b'"}'
    for method, template in ROUTES:
        if method == "POST":
            path = template.format(id=target["id"], name="greeting", unknown="x")
            assert_error(api.http.post(api.url + path, data=ten_mb, timeout=60), 413, "PAYLOAD_TOO_LARGE")
