"""`/api/v1/openapi.json` is a valid OpenAPI 3 document that names every route of the app, and its
rules (patterns, bounds) are the server's own."""

from __future__ import annotations

import re

from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from api import openapi
from api import query as query_parsing
from api.requests import instance_request
from orchestrator.definitions import parse_definition
from orchestrator.errors import ValidationError

_VARIABLE = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
_HTML_BLUEPRINTS = ("static", "ui.")  # pages for people, not the API


def test_the_document_is_valid_and_served(live_api):
    response = live_api.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"].startswith("3.")


def test_every_route_and_method_is_documented(live_api):
    paths = live_api.get("/api/v1/openapi.json").json()["paths"]
    missing = []
    for rule in live_api.app.url_map.iter_rules():
        if rule.endpoint.startswith(_HTML_BLUEPRINTS):
            continue
        path = _VARIABLE.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if method.lower() not in paths.get(path, {}):
                missing.append(f"{method} {path}")
    assert missing == []
    for path, item in paths.items():
        for method, operation in item.items():
            if method != "parameters":
                assert {"200", "201", "202"} & set(operation["responses"]), (method, path)


def _pattern(text: str) -> re.Pattern[str]:
    """A document's `^...$` pattern with the meaning JSON Schema gives it (`$` is the end of the text)."""
    assert text.startswith("^") and text.endswith("$"), text
    return re.compile(text[1:-1])


def _definition_problems(**fields: object) -> set[str]:
    body = {"name": "w", "nodes": [{"id": "a", "executor": "noop"}], **fields}
    try:
        parse_definition(body)
    except ValidationError as exc:
        return {p.field for p in exc.problems}
    return set()


def _listing_filter(query: list[tuple[str, str]]) -> bool:
    """Whether `GET /instances` takes these filters (its parsing alone, no database)."""
    with Flask(__name__).test_request_context("/", query_string=query):
        try:
            query_parsing.instance_filter()
        except ValidationError:
            return False
    return True


_texts = st.text(max_size=40) | st.text(alphabet="abcdefz019.-_+:/, \t", max_size=20)
_pattern_settings = settings(max_examples=300, deadline=None)


@_pattern_settings
@given(st.from_regex(_pattern(openapi.NAME_PATTERN), fullmatch=True) | _texts)
def test_the_documents_name_pattern_is_the_servers_rule(name):
    documented = _pattern(openapi.NAME_PATTERN).fullmatch(name) is not None
    assert documented == ("name" not in _definition_problems(name=name))


@_pattern_settings
@given(st.from_regex(_pattern(openapi.VERSION_PATTERN), fullmatch=True) | _texts | st.just("latest"))
def test_the_documents_version_pattern_is_the_servers_rule(version):
    documented = _pattern(openapi.VERSION_PATTERN).fullmatch(version) is not None and len(version) <= 64
    assert documented == ("version" not in _definition_problems(version=version))


@_pattern_settings
@given(st.from_regex(_pattern(openapi.TAG_KEY_PATTERN), fullmatch=True) | _texts)
def test_the_documents_tag_key_and_queue_patterns_are_the_servers_rules(text):
    for pattern, body in (
        (openapi.TAG_KEY_PATTERN, {"tags": {text: "v"}}),
        (openapi.QUEUE_PATTERN, {"queue": text}),
    ):
        try:
            instance_request({"workflow": "w", **body})
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == (_pattern(pattern).fullmatch(text) is not None), (pattern, text)


@_pattern_settings
@given(
    st.lists(
        st.from_regex(_pattern(openapi.STATUS_FILTER_PATTERN), fullmatch=True)
        | st.sampled_from(["running", "running,failed", " pending , ", "", ",", "bogus", "running failed"])
        | _texts,
        max_size=3,
    ),
    st.lists(st.from_regex(_pattern(openapi.TAG_FILTER_PATTERN), fullmatch=True) | _texts, max_size=3),
)
def test_the_documents_listing_filters_are_the_servers_rules(statuses, tags):
    documented = all(_pattern(openapi.STATUS_FILTER_PATTERN).fullmatch(s) for s in statuses) and all(
        _pattern(openapi.TAG_FILTER_PATTERN).fullmatch(t) for t in tags
    )
    assert documented == _listing_filter([("status", s) for s in statuses] + [("tag", t) for t in tags])


def test_integer_parameters_are_bounded_as_documented(live_api):
    """Each documented bound is the server's: the bound itself is taken, one past it is a 422."""
    a_map = {
        "id": "m",
        "type": "map",
        "dependsOn": ["a"],
        "over": "${nodes.a.output.x}",
        "node": {"executor": "noop"},
    }
    nodes = [{"id": "a", "executor": "noop"}, a_map]
    response = live_api.post("/api/v1/definitions", {"name": "w", "nodes": nodes})
    assert response.status_code == 201, response.text
    instance_id = live_api.post("/api/v1/instances", {"workflow": "w", "start": False}).json()["id"]
    assert live_api.post(f"/api/v1/instances/{instance_id}/cancel").status_code == 200  # ends the stream
    checked = []
    for path, item in live_api.get("/api/v1/openapi.json").json()["paths"].items():
        for parameter in item.get("get", {}).get("parameters", []):
            schema = parameter["schema"]
            if schema.get("type") != "integer":
                continue
            url = path.replace("{instance_id}", instance_id).replace("{map_node_id}", "m")
            for value in (schema["minimum"], schema["maximum"]):
                answer = live_api.get(url, params={parameter["name"]: value})
                assert answer.status_code == 200, (url, parameter["name"], value, answer.text)
            for value in (schema["minimum"] - 1, schema["maximum"] + 1):
                answer = live_api.get(url, params={parameter["name"]: value})
                assert answer.status_code == 422, (url, parameter["name"], value, answer.text)
            checked.append(f"{path}?{parameter['name']}")
    assert len(checked) == 8, checked  # limit five times, afterId twice, a map's items' after


def test_every_request_body_documents_415_and_lifecycle_bodies_take_only_their_fields(live_api):
    paths = live_api.get("/api/v1/openapi.json").json()["paths"]
    posts = {path: item["post"] for path, item in paths.items() if "post" in item}
    assert len(posts) == 13
    for path, operation in [
        *posts.items(),
        ("/api/v1/schedules/{name}", paths["/api/v1/schedules/{name}"]["patch"]),
    ]:
        assert "415" in operation["responses"], path
        actions = ("/api/v1/instances/{instance_id}/", "/api/v1/schedules/{name}/")
        if path.startswith(actions) and "/signals/" not in path:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert operation["requestBody"]["required"] is False and schema["additionalProperties"] is False
