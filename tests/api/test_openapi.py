"""`/api/v1/openapi.json` is a valid OpenAPI 3 document that names every route of the app."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

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
                assert "200" in operation["responses"] or "201" in operation["responses"], (method, path)
