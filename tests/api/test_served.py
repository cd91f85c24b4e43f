"""`orchestrator api`: the app under gunicorn (several workers and threads), over real HTTP."""

from __future__ import annotations

import sys

import pytest
import requests

from orchestrator.client_cli import parse_events
from tests.api.helpers import GREETING, JSON, assert_error
from tests.support.fixtures import MYSQL_URL, REDIS_URL
from tests.support.services import Process, free_port, process_env, wait_for


@pytest.fixture()
def served(db, tmp_path):
    port = free_port()
    env = process_env(
        ORCH_DATABASE_URL=MYSQL_URL,
        ORCH_BROKER_URL=REDIS_URL,
        ORCH_EXECUTOR_MODULES="tests.support.executors",
        ORCH_API_TOKENS="secret",
        ORCH_MAX_BODY_BYTES="100000",
    )
    argv = [sys.executable, "-m", "orchestrator.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
    process = Process("api", [*argv, "--workers", "2", "--threads", "4"], env, tmp_path / "api.log").start()
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.alive(), process.log_text()[-3000:]
        try:
            return requests.get(url + "/health", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for(healthy, 30, "gunicorn to serve /health")
        yield url
    finally:
        process.stop(grace=10)


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
