"""`orchestrator api`: the app under gunicorn (gevent workers), over real HTTP and raw sockets."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from api import auth
from api.gunicorn_conf import REDACTED
from orchestrator.client_cli import parse_events
from tests.api.helpers import GREETING, JSON, assert_error
from tests.api.served import (
    ServedApi,
    error_body,
    open_stream,
    raise_open_files_limit,
    sockets,
)
from tests.support.services import wait_for

STREAMS = 200
HALF_OPEN = 200


@pytest.fixture()
def served(db, tmp_path):
    api = ServedApi(
        tmp_path, "--workers", "2", ORCH_API_TOKENS="secret", ORCH_MAX_BODY_BYTES="100000"
    ).start()
    try:
        yield api.url
    finally:
        api.stop()


def test_gunicorn_serves_the_api_with_auth_and_body_limits(served):
    session = requests.Session()
    assert_error(session.get(served + "/api/v1/definitions"), 401, "UNAUTHORIZED")
    session.headers["Authorization"] = "Bearer secret"
    assert session.post(served + "/api/v1/definitions", json=GREETING).status_code == 201
    created = session.post(
        served + "/api/v1/instances", json={"workflow": "greeting", "input": {"email": "x"}}
    )
    assert created.status_code == 201, created.text
    assert session.get(served + "/api/v1/instances").json()["instances"][0]["id"] == created.json()["id"]

    big = b'{"workflow": "' + b"x" * 10_000_000 + b'"}'
    assert_error(session.post(served + "/api/v1/instances", data=big), 413, "PAYLOAD_TOO_LARGE")
    chunked = session.post(
        served + "/api/v1/instances", data=iter([big[:60_000], big[60_000:120_000], b'"}']), headers=JSON
    )
    assert_error(chunked, 413, "PAYLOAD_TOO_LARGE")
    assert_error(session.post(served + "/api/v1/instances", data=b"{", headers=JSON), 400, "BAD_REQUEST")
    assert session.get(served + "/api/v1/openapi.json").status_code == 200

    instance_id = created.json()["id"]
    assert session.post(f"{served}/api/v1/instances/{instance_id}/cancel").json()["status"] == "cancelled"
    with session.get(f"{served}/api/v1/instances/{instance_id}/events", stream=True, timeout=30) as stream:
        events = list(parse_events(stream.iter_lines(decode_unicode=True)))
    assert events[-1] == ("end", {"status": "cancelled"}, None)
    assert [data["status"] for name, data, _ in events if name == "node"] == ["cancelled"]


def _fill_streams(port: int, path: str, opened: list[socket.socket]) -> list[tuple[socket.socket, bytes]]:
    """Open event streams until STREAMS are served at once. Each of the two processes serves half of
    them (ORCH_MAX_STREAMS); which process takes a connection is the kernel's choice, so a stream may
    be refused by a full one before the other is full: it must then be a 503 with Retry-After."""
    streams: list[tuple[socket.socket, bytes]] = []
    for _ in range(STREAMS * 10):
        sock, status, headers, rest = open_stream(port, path, "secret")
        opened.append(sock)
        if status == 200:
            assert headers["content-type"].startswith("text/event-stream")
            streams.append((sock, rest))
            if len(streams) == STREAMS:
                return streams
        else:
            assert status == 503 and int(headers["retry-after"]) > 0, (status, headers)
            sock.close()
    raise AssertionError(f"only {len(streams)} streams were served")


def _wait_for_event(sock: socket.socket, data: bytes, name: bytes) -> None:
    """Read the stream on `sock` (`data`: what was read of it already) until it has sent event `name`."""
    while b"event: " + name not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the stream ended before its {name!r} event: {data!r}"
        data += chunk


def test_200_streams_and_200_stalled_connections_leave_health_and_create_answered(db, tmp_path):
    """With 2 workers (as deployed) and a cap of 100 streams per process: 200 open event streams and
    200 connections that never finish their request (half silent, half with half-sent headers and no
    token) at once, and `/health` and a create are still answered within 10 s; stream 201 gets 503."""
    raise_open_files_limit(STREAMS * 3 + HALF_OPEN * 2 + 256)
    per_process = STREAMS // 2
    api = ServedApi(tmp_path, "--workers", "2", ORCH_API_TOKENS="secret", ORCH_MAX_STREAMS=str(per_process))
    api.start()
    session = requests.Session()
    session.headers["Authorization"] = "Bearer secret"
    try:
        with sockets() as opened:
            assert session.post(api.url + "/api/v1/definitions", json=GREETING, timeout=10).status_code == 201
            # never started and no worker: the instance stays pending, so its streams stay open
            body = {"workflow": "greeting", "input": {"email": "x"}, "start": False}
            instance_id = session.post(api.url + "/api/v1/instances", json=body, timeout=10).json()["id"]
            path = f"/api/v1/instances/{instance_id}/events"

            streams = _fill_streams(api.port, path, opened)
            for sock, data in streams:  # each one is a live stream, its first events sent
                _wait_for_event(sock, data, b"status")
            for i in range(HALF_OPEN):
                sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
                opened.append(sock)
                if i % 2:
                    sock.sendall(b"GET /api/v1/definitions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")

            started = time.monotonic()
            health = requests.get(api.url + "/health", timeout=10)
            assert health.status_code == 200, health.text
            body = {"workflow": "greeting", "input": {"email": "y"}}
            created = session.post(api.url + "/api/v1/instances", json=body, timeout=10)
            assert created.status_code == 201, created.text
            status = session.get(f"{api.url}/api/v1/instances/{instance_id}/status", timeout=10)
            assert status.status_code == 200 and status.json()["status"] == "pending"
            assert time.monotonic() - started < 10

            # one stream over the cap: refused at once, never queued behind the open ones
            sock, code, headers, rest = open_stream(api.port, path, "secret", timeout=10)
            opened.append(sock)
            assert code == 503, (code, headers)
            assert int(headers["retry-after"]) > 0
            assert headers["content-type"].startswith("application/json")
            assert error_body(headers, rest, sock)["error"]["code"] == "TOO_MANY_STREAMS"
    finally:
        session.close()
        api.stop()


def test_the_access_log_never_holds_a_token(db, tmp_path):
    """Every way a token can reach the server: the bearer header, the login form, the session cookie
    (also on the event stream), and the URL and referer a client may still put it in."""
    token = "tok-4d1c9e-secret"
    api = ServedApi(tmp_path, "--workers", "1", ORCH_API_TOKENS=token).start()
    try:
        bearer = {"Authorization": f"Bearer {token}"}
        defined = requests.post(api.url + "/api/v1/definitions", json=GREETING, headers=bearer)
        assert defined.status_code == 201
        body = {"workflow": "greeting", "input": {"email": "x"}}
        instance_id = requests.post(api.url + "/api/v1/instances", json=body, headers=bearer).json()["id"]
        requests.post(f"{api.url}/api/v1/instances/{instance_id}/cancel", headers=bearer).raise_for_status()

        browser = requests.Session()
        assert browser.post(api.url + "/ui/login", json={"token": token}).status_code == 204
        session = browser.cookies[auth.COOKIE]
        assert browser.get(api.url + "/ui/").status_code == 200
        assert browser.get(api.url + "/api/v1/instances").status_code == 200
        events = f"{api.url}/api/v1/instances/{instance_id}/events"
        with browser.get(events, stream=True, timeout=30) as stream:
            assert stream.status_code == 200 and stream.content  # read to its end
        for url in (
            f"{api.url}/ui/?token={token}",
            f"{api.url}/api/v1/instances?status=running&access_token={token}",
            f"{api.url}/ui/instances/{instance_id}?live=poll&api_key={token}",
        ):
            requests.get(url, headers={"Referer": f"{api.url}/ui/?token={token}"})
        assert browser.post(api.url + "/ui/logout", json={}).status_code == 204

        # each request's line is written once its response is done, by its own request thread: the
        # logout's line can come before the event stream's (or another's), so wait for all of them
        expected = (
            "POST /ui/logout",
            f"GET /ui/?token={REDACTED} HTTP/1.1",
            f"GET /api/v1/instances?status=running&access_token={REDACTED} HTTP/1.1",
            "GET /ui/instances/",
            "/events HTTP/1.1",
        )

        def logged() -> str:
            text = api.log()
            return text if all(line in text for line in expected) else ""

        log = wait_for(logged, 10, f"the access log lines {expected}")
        assert token not in log
        assert session not in log
    finally:
        api.stop()
