"""A state-changing request's body must be declared `application/json` (415 otherwise).

A web page can make its visitor's browser send a cross-site `text/plain` or form POST without asking
(no preflight), but not one declared as JSON: so no page can create or change anything through an
API that runs without tokens on the visitor's machine or network.
"""

from __future__ import annotations

import json

import pytest

from tests.api.helpers import GREETING, assert_error, create, define

DEFINITION = json.dumps(GREETING)
INSTANCE = json.dumps({"workflow": "greeting", "input": {"email": "a@x"}})
# what a cross-site page can send: a `<form>` (urlencoded or text/plain) or a "simple" fetch
HOSTILE = [
    ("text/plain", DEFINITION),
    ("text/plain;charset=UTF-8", INSTANCE),
    ("application/x-www-form-urlencoded", "workflow=greeting&input=%7B%7D"),
    ("multipart/form-data; boundary=x", '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n{}\r\n--x--'),
]


def _post(live_api, path: str, content_type: str | None, body: str | bytes = b""):
    headers = {"Content-Type": content_type} if content_type is not None else {}
    return live_api.http.post(live_api.url + path, data=body, headers=headers, timeout=30)


@pytest.mark.parametrize(("content_type", "body"), HOSTILE, ids=[c.split(";")[0] for c, _ in HOSTILE])
def test_other_media_types_change_nothing(live_api, content_type, body):
    assert_error(
        _post(live_api, "/api/v1/definitions", content_type, DEFINITION), 415, "UNSUPPORTED_MEDIA_TYPE"
    )
    assert live_api.get("/api/v1/definitions").json()["definitions"] == []
    define(live_api, GREETING)
    for path in ("/api/v1/instances", "/api/v1/instances/batch"):
        assert_error(_post(live_api, path, content_type, body), 415, "UNSUPPORTED_MEDIA_TYPE")
    assert live_api.get("/api/v1/instances").json()["instances"] == []
    instance_id = create(live_api, {"workflow": "greeting", "input": {"email": "a@x"}, "start": False})["id"]
    for action in ("start", "cancel"):
        response = _post(live_api, f"/api/v1/instances/{instance_id}/{action}", content_type, body)
        assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert live_api.get(f"/api/v1/instances/{instance_id}/status").json()["status"] == "pending"


def test_an_empty_form_is_refused_too(live_api):
    """A `<form method=post>` with no fields sends its content type and an empty body."""
    define(live_api, GREETING)
    instance_id = create(live_api, {"workflow": "greeting", "input": {"email": "a@x"}, "start": False})["id"]
    for content_type in ("application/x-www-form-urlencoded", "text/plain"):
        response = _post(live_api, f"/api/v1/instances/{instance_id}/cancel", content_type)
        assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert live_api.get(f"/api/v1/instances/{instance_id}/status").json()["status"] == "pending"


def test_json_with_or_without_a_utf8_charset_is_accepted(live_api):
    for content_type in (
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
    ):
        assert _post(live_api, "/api/v1/definitions", content_type, DEFINITION).status_code in (200, 201)
    for content_type in ("application/json; charset=latin-1", "application/json-seq", "application/jsonx"):
        response = _post(live_api, "/api/v1/definitions", content_type, DEFINITION)
        assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_a_body_without_a_content_type_is_refused(live_api):
    assert_error(_post(live_api, "/api/v1/definitions", None, DEFINITION), 415, "UNSUPPORTED_MEDIA_TYPE")
    chunked = live_api.http.post(live_api.url + "/api/v1/definitions", data=iter([DEFINITION.encode()]))
    assert_error(chunked, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert live_api.get("/api/v1/definitions").json()["definitions"] == []


def test_no_body_needs_no_content_type(live_api):
    """A lifecycle action's body is optional; where a body is required its absence is a 400."""
    define(live_api, GREETING)
    instance_id = create(live_api, {"workflow": "greeting", "input": {"email": "a@x"}, "start": False})["id"]
    started = _post(live_api, f"/api/v1/instances/{instance_id}/start", None)
    assert started.status_code == 200 and started.json()["status"] == "running", started.text
    assert _post(live_api, f"/api/v1/instances/{instance_id}/pause", "application/json").status_code == 200
    assert_error(_post(live_api, "/api/v1/instances", None), 400, "BAD_REQUEST")


def test_routing_errors_and_reads_are_unchanged(live_api):
    assert_error(_post(live_api, "/api/v1/nowhere", "text/plain", "x"), 404, "NOT_FOUND")
    wrong_method = live_api.http.put(
        live_api.url + "/api/v1/instances", data="x", headers={"Content-Type": "text/plain"}
    )
    assert_error(wrong_method, 405, "METHOD_NOT_ALLOWED")
    assert live_api.get("/api/v1/definitions", headers={"Content-Type": "text/plain"}).status_code == 200
