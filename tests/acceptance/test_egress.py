"""The egress policy on real workers: what the product itself calls (the `http` executor, callbacks)
is judged where it connects. Every listener here is on a loopback address, which the production
defaults deny; a test that opens one says so with `@pytest.mark.egress_allow`."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select

from orchestrator.models import InstanceRow
from tests.acceptance.helpers import define, start
from tests.support.listeners import Listener
from tests.support.services import free_port, wait_for


def _http_workflow(name: str, url: str) -> dict[str, Any]:
    node = {"id": "call", "type": "task", "executor": "http", "retries": 2, "retryDelay": 10}
    return {"name": name, "version": "1.0.0", "nodes": [{**node, "config": {"url": url, "timeout": 5000}}]}


def _one_noop(name: str) -> dict[str, Any]:
    return {"name": name, "version": "1.0.0", "nodes": [{"id": "a", "type": "task", "executor": "noop"}]}


def _node_error(api: Any, instance_id: str) -> dict[str, Any]:
    (node,) = api.get(f"/api/v1/instances/{instance_id}/nodes").json()["nodes"]
    assert node["status"] == "failed" and node["attempt"] == 1, node  # failed for good: not retried
    return dict(node["error"])


def _delivery(db: Engine, instance_id: str) -> tuple[str | None, int]:
    with db.connect() as conn:
        row = conn.execute(
            select(InstanceRow.callback_state, InstanceRow.callback_attempts).where(
                InstanceRow.id == instance_id
            )
        ).one()
    return row.callback_state, row.callback_attempts


def test_production_defaults_deny_a_loopback_listener_to_the_http_executor_and_to_callbacks(
    db, live_api, processes
):
    with Listener("127.0.0.1") as target:
        processes.worker("w1")
        define(live_api, _http_workflow("egress-http", target.url + "/private"))
        called = start(live_api, "egress-http")
        assert live_api.wait_status(called)["status"] == "failed"
        error = _node_error(live_api, called)
        assert error["code"] == "EGRESS_DENIED" and "127.0.0.0/8 (loopback" in error["message"]

        # a host name passes the create-time check (it is not resolved there) and is judged where
        # the delivery connects
        define(live_api, _one_noop("egress-hook"))
        hooked = start(live_api, "egress-hook", callbackUrl=f"http://localhost:{target.port}/hook?k=v")
        assert live_api.wait_status(hooked)["status"] == "completed"
        wait_for(lambda: _delivery(db, hooked) == ("failed", 1), 30, "the delivery to fail at once")
        lines = live_api.get(f"/api/v1/instances/{hooked}/logs").json()["logs"]
        denied = [
            line for line in lines if line["details"] and line["details"].get("code") == "EGRESS_DENIED"
        ]
        assert len(denied) == 1 and "/hook?k=***" in denied[0]["message"]
        assert target.requests == []


@pytest.mark.egress_allow("127.0.0.2/32")
def test_a_redirect_from_an_allowed_listener_to_a_denied_one_fails_the_node(db, live_api, processes):
    with Listener("127.0.0.1") as denied, Listener("127.0.0.2", redirect_to=denied.url + "/in") as allowed:
        processes.worker("w1")
        define(live_api, _http_workflow("egress-redirect", allowed.url + "/start"))
        instance_id = start(live_api, "egress-redirect")
        assert live_api.wait_status(instance_id)["status"] == "failed"
        assert _node_error(live_api, instance_id)["code"] == "EGRESS_DENIED"
        assert allowed.requests == [("GET", "/start")]
        assert denied.requests == []


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://[::1]:22/", "http://0.0.0.0:6379/"]
)
def test_a_callback_url_whose_host_is_a_denied_address_is_refused_at_create(db, live_api, url):
    define(live_api, _one_noop("egress-early"))
    response = live_api.post("/api/v1/instances", {"workflow": "egress-early", "callbackUrl": url})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["error"]["details"]
    assert problem["field"] == "callbackUrl" and problem["code"] == "EGRESS_DENIED"


@pytest.mark.egress_allow("127.0.0.1/32")
def test_a_callback_url_is_shown_and_logged_without_its_secrets(db, live_api, processes):
    port = free_port()  # nothing listens there: each attempt fails and is logged
    url = f"http://user:hunter2@127.0.0.1:{port}/hook?apikey=SECRET"
    worker = processes.worker("w1")
    define(live_api, _one_noop("secret-hook"))
    instance_id = start(live_api, "secret-hook", callbackUrl=url)
    assert live_api.wait_status(instance_id)["status"] == "completed"
    wait_for(lambda: _delivery(db, instance_id)[1] >= 2, 30, "two failed attempts")
    wait_for(lambda: worker.log_text().count(f"callback for {instance_id} failed") >= 2, 30, "both logged")

    shown = live_api.get(f"/api/v1/instances/{instance_id}").json()["callbackUrl"]
    assert shown == f"http://user:***@127.0.0.1:{port}/hook?apikey=***"
    for text in (
        worker.log_text(),
        live_api.get(f"/api/v1/instances/{instance_id}").text,
        live_api.get(f"/api/v1/instances/{instance_id}/logs").text,
    ):
        assert "SECRET" not in text and "hunter2" not in text
    assert "/hook?apikey=***" in worker.log_text()  # what failed is still told
    with db.connect() as conn:  # stored as given: the delivery needs the credentials
        stored = conn.execute(select(InstanceRow.callback_url).where(InstanceRow.id == instance_id))
        assert stored.scalar_one() == url
