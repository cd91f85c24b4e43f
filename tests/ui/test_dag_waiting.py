"""The DAG page says why a queued node is not running: "waiting for a worker" in its details, until
a worker takes it. Real Chromium (tests/ui/browser.py), a worker for the control queue only."""

from __future__ import annotations

from tests.support.services import wait_for
from tests.ui.browser import node_states, open_page

ONE = {
    "name": "ui-waiting",
    "version": "1.0.0",
    "nodes": [{"id": "only", "type": "task", "executor": "noop"}],
}


def test_a_queued_node_shows_it_waits_for_a_worker(db, live_api, processes, browser) -> None:
    processes.worker("control", queues=["orchestrator"])  # `schedule` runs; nothing takes the node
    assert live_api.post("/api/v1/definitions", ONE).status_code == 201
    instance_id = live_api.post("/api/v1/instances", {"workflow": "ui-waiting"}).json()["id"]
    page = open_page(browser, f"{live_api.url}/ui/instances/{instance_id}")
    wait_for(lambda: node_states(page).get("only") == "queued", 30, "the node queued on the page")
    page.click('#dag .node[data-node-id="only"]')
    wait_for(lambda: "waiting for a worker" in page.inner_text("#details"), 10, "the reason in the details")

    processes.worker("nodes", queues=["default"])
    wait_for(lambda: node_states(page).get("only") == "completed", 30, "the node completed on the page")
    assert "waiting" not in page.inner_text("#details")
