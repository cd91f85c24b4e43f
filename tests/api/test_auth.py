"""Bearer tokens: with ORCH_API_TOKENS set every /api/ path needs one (or, for reads, the UI's session
cookie from its login form); /health and /metrics stay open; a token in a URL is never accepted."""

from __future__ import annotations

import time

import pytest
import requests

from api import auth, create_app
from orchestrator.settings import Settings
from tests.api.helpers import GREETING, assert_error
from tests.support.fixtures import LiveApi


@pytest.fixture()
def secured_api(db):
    api = LiveApi(Settings.from_env().with_overrides(api_tokens=("t1", "t2")))
    yield api
    api.close()


def test_api_paths_need_a_valid_bearer_token(secured_api):
    api = secured_api
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "t1"},
        {"Authorization": "Basic t1"},
    ):
        for path in ("/api/v1/definitions", "/api/v1/instances", "/api/v1/openapi.json", "/api/v1/nothing"):
            response = api.get(path, headers=headers)
            assert_error(response, 401, "UNAUTHORIZED")
            assert response.headers["WWW-Authenticate"] == "Bearer"
    assert_error(api.post("/api/v1/definitions", GREETING), 401)
    assert_error(api.post("/api/v1/instances/x/cancel", headers={"Authorization": "Bearer t3"}), 401)

    for token in ("t1", "t2"):
        response = api.get("/api/v1/definitions", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
    created = api.post("/api/v1/definitions", GREETING, headers={"Authorization": "bearer t1"})
    assert created.status_code == 201
    unknown = api.get("/api/v1/nothing", headers={"Authorization": "Bearer t1"})
    assert_error(unknown, 404)


def test_health_and_metrics_stay_open(secured_api):
    assert secured_api.get("/health").status_code == 200
    assert secured_api.get("/metrics").status_code == 200


def test_without_tokens_the_api_is_open(live_api):
    assert live_api.get("/api/v1/definitions").status_code == 200
    assert (
        live_api.get("/api/v1/definitions", headers={"Authorization": "Bearer anything"}).status_code == 200
    )


def _login(api: LiveApi, token: str) -> requests.Response:
    return api.http.post(f"{api.url}/ui/login", json={"token": token}, timeout=10)


def test_the_login_form_sets_an_http_only_strict_cookie_that_reads_the_api(secured_api):
    api = secured_api
    assert_error(_login(api, "wrong"), 401, "UNAUTHORIZED")
    assert auth.COOKIE not in api.http.cookies
    # a cross-site form can only send form encodings: the login takes JSON alone
    form = requests.post(f"{api.url}/ui/login", data={"token": "t1"}, timeout=10)
    assert_error(form, 415)
    assert "Set-Cookie" not in form.headers

    signed_in = _login(api, "t2")
    assert signed_in.status_code == 204
    cookie = signed_in.headers["Set-Cookie"]
    assert cookie.startswith(f"{auth.COOKIE}=") and "t2" not in cookie.split(";")[0]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path", "max-age"} <= attributes and "secure" not in attributes  # plain http
    assert "SameSite=Strict" in cookie and "Path=/" in cookie

    assert api.get("/api/v1/definitions").status_code == 200  # the cookie alone
    assert api.http.head(f"{api.url}/api/v1/definitions", timeout=10).status_code == 200
    # ... never for a change: a cross-site request carries the cookie too
    refused = assert_error(api.post("/api/v1/definitions", GREETING), 401, "UNAUTHORIZED")
    assert "cookie" in refused["message"]
    assert_error(api.post("/api/v1/instances/x/cancel", {}), 401)
    headers = {"Authorization": "Bearer t1"}
    assert api.post("/api/v1/definitions", GREETING, headers=headers).status_code == 201

    logged_out = api.http.post(f"{api.url}/ui/logout", json={}, timeout=10)
    assert logged_out.status_code == 204
    cleared = logged_out.headers["Set-Cookie"]
    assert cleared.startswith(f"{auth.COOKIE}=;") and "Max-Age=0" in cleared, cleared
    assert auth.COOKIE not in api.http.cookies
    assert_error(api.get("/api/v1/definitions"), 401)


def test_a_token_in_the_url_is_not_accepted(secured_api):
    for path in ("/api/v1/definitions?token=t1", "/api/v1/definitions?access_token=t1"):
        assert_error(secured_api.get(path), 401, "UNAUTHORIZED")


def test_a_session_cookie_lapses_and_dies_with_its_token(secured_api):
    tokens = auth.Tokens(("t1", "t2"))
    now = time.time()
    assert tokens.session_valid(tokens.session("t1", now=now))
    lapsed = tokens.session("t1", now=now - auth.SESSION_S - 1)
    assert not tokens.session_valid(lapsed)
    other = auth.Tokens(("t3",)).session("t3")  # signed with a token this server does not have
    for value in (lapsed, other, "", "x", "123.abc", "99999999999.zz", tokens.session("t1") + "0"):
        assert not tokens.session_valid(value), value
        secured_api.http.cookies.set(auth.COOKIE, value)
        assert_error(secured_api.get("/api/v1/definitions"), 401)
    secured_api.http.cookies.set(auth.COOKIE, tokens.session("t2"))
    assert secured_api.get("/api/v1/definitions").status_code == 200


def test_ui_pages_send_a_visitor_without_a_session_to_the_login_form(secured_api):
    api = secured_api
    page = api.get("/ui/instances/abc?live=poll", allow_redirects=False)
    assert page.status_code == 303
    assert page.headers["Location"].endswith("/ui/login?next=/ui/instances/abc%3Flive%3Dpoll")
    form = api.get("/ui/login")
    assert form.status_code == 200 and 'method="post"' in form.text and 'type="password"' in form.text
    assert _login(api, "t1").status_code == 204
    signed_in = api.get("/ui/instances/abc")
    assert signed_in.status_code == 200 and 'id="logout"' in signed_in.text


def test_without_tokens_the_ui_needs_no_login(live_api):
    assert live_api.get("/ui/").status_code == 200 and 'id="logout"' not in live_api.get("/ui/").text
    assert live_api.get("/ui/login", allow_redirects=False).headers["Location"].endswith("/ui/")


def test_the_cookie_is_secure_when_served_over_https(db):
    app = create_app(Settings.from_env().with_overrides(api_tokens=("t1",)))
    try:
        client = app.test_client()
        response = client.post("/ui/login", json={"token": "t1"}, base_url="https://orchestrator.example")
        assert response.status_code == 204
        assert "Secure" in response.headers["Set-Cookie"]
    finally:
        app.extensions["orchestrator.engine"].dispose()
