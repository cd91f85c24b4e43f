"""The `/ui` pages in a real headless Chromium: the DAG of a running instance changes colour as its nodes
run, both from the event stream and by polling; node details on click; the list; the login form.

Saves a screenshot of a running instance's page in the test's directory; with ORCH_UPDATE_SCREENSHOT=1
to docs/ui.png (the README's picture), so a test run leaves the checkout as it found it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from orchestrator.settings import Settings
from tests.support.executors import open_gate
from tests.support.fixtures import LiveApi
from tests.support.services import ROOT, wait_for
from tests.ui.browser import elapsed_ms, node_states
from tests.ui.browser import open_page as open_blank_page

PIPELINE = {
    "name": "ui-demo",
    "version": "1.0.0",
    "description": "fetch, two transforms in parallel, publish",
    "nodes": [
        {"id": "fetch", "type": "task", "executor": "tests.gated", "config": {"gate": "fetch"}},
        {
            "id": "transform-a",
            "type": "task",
            "executor": "tests.gated",
            "dependsOn": ["fetch"],
            "config": {"gate": "transform"},
        },
        {
            "id": "transform-b",
            "type": "task",
            "executor": "tests.gated",
            "dependsOn": ["fetch"],
            "config": {"gate": "transform"},
        },
        {
            "id": "publish",
            "type": "task",
            "executor": "tests.gated",
            "dependsOn": ["transform-a", "transform-b"],
            "config": {"gate": "publish"},
        },
    ],
}
NODE_IDS = [n["id"] for n in PIPELINE["nodes"]]
# every node waits at its gate until both pages have shown it running: the polling page (one poll a
# second) sees each one running however slow the machine or the browser is

# Installed before the page's own scripts: records every change of a node's or the live indicator's
# data-status / data-live, in order, so the test sees transitions however fast they were.
RECORDER = """
window.__changes = [];
new MutationObserver((mutations) => {
  for (const m of mutations) {
    const t = m.target;
    if (m.attributeName === "data-status" && t.dataset && t.dataset.nodeId) {
      window.__changes.push(["node", t.dataset.nodeId, t.dataset.status]);
    } else if (m.attributeName === "data-live") {
      window.__changes.push(["live", "", t.dataset.live]);
    }
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-status", "data-live"] });
"""


def open_page(browser: Any, url: str) -> Any:
    return open_blank_page(browser, url, RECORDER)


def history(page: Any) -> tuple[list[tuple[str, str]], list[str]]:
    changes = page.evaluate("window.__changes")
    nodes = [(node, status) for kind, node, status in changes if kind == "node"]
    live = [status for kind, _, status in changes if kind == "live"]
    return nodes, live


def position(changes: list[tuple[str, str]], node: str, status: str) -> int:
    assert (node, status) in changes, f"{node} was never seen {status}: {changes}"
    return changes.index((node, status))


def test_the_dag_page_follows_a_running_instance_live(
    db, live_api, processes, browser, redis_client, tmp_path: Path
) -> None:
    processes.worker("w1", concurrency=2)
    assert live_api.post("/api/v1/definitions", PIPELINE).status_code == 201
    created = live_api.post("/api/v1/instances", {"workflow": "ui-demo", "start": False})
    instance_id = created.json()["id"]
    page_url = f"{live_api.url}/ui/instances/{instance_id}"
    streamed = open_page(browser, page_url)  # the event stream
    polled = open_page(browser, page_url + "?live=poll")  # the fallback: /nodes and /status every second
    for page in (streamed, polled):
        wait_for(lambda p=page: len(node_states(p)) == 4, 15, "the graph to be drawn")
        assert set(node_states(page).values()) == {"pending"}
    for page, mode in ((streamed, "events"), (polled, "polling")):
        wait_for(lambda p=page, m=mode: p.get_attribute("#live", "data-live") == m, 10, f"live by {mode}")

    assert live_api.post(f"/api/v1/instances/{instance_id}/start").status_code == 200

    def shown(states: dict[str, str]) -> bool:
        return all(node_states(page).items() >= states.items() for page in (streamed, polled))

    wait_for(lambda: shown({"fetch": "running"}), 20, "fetch running on both pages")
    open_gate(redis_client, "fetch")
    # mid-run: fetch done, the transforms running; open fetch's details and take the screenshot
    running = {"fetch": "completed", "transform-a": "running", "transform-b": "running"}
    wait_for(lambda: shown(running), 20, "fetch completed and the transforms running on both pages")
    streamed.click('#dag .node[data-node-id="fetch"]')
    # shown at once from what the page has, then completed with the output from /nodes
    wait_for(lambda: '"node": "fetch"' in streamed.inner_text("#details"), 10, "the output of fetch")
    details = streamed.inner_text("#details")
    assert details.startswith("fetch") and "tests.gated" in details and "w1" in details
    # the picture shows the time running (the transforms wait at their gate meanwhile)
    wait_for(lambda: (elapsed_ms(streamed) or 0) >= 1500, 10, "elapsed time shown growing past 1.5 s")
    updating = os.environ.get("ORCH_UPDATE_SCREENSHOT") == "1"
    screenshot = ROOT / "docs" / "ui.png" if updating else tmp_path / "ui.png"
    streamed.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 0
    open_gate(redis_client, "transform")
    wait_for(lambda: shown({"publish": "running"}), 20, "publish running on both pages")
    open_gate(redis_client, "publish")

    for page in (streamed, polled):
        wait_for(
            lambda p=page: p.get_attribute("#instance-status", "data-status") == "completed", 30, "the end"
        )
        wait_for(lambda p=page: set(node_states(p).values()) == {"completed"}, 10, "every node completed")
        wait_for(lambda p=page: p.get_attribute("#live", "data-live") == "finished", 10, "the live indicator")
        changes, live = history(page)
        for node in NODE_IDS:
            assert position(changes, node, "running") < position(changes, node, "completed")
        for transform in ("transform-a", "transform-b"):
            assert position(changes, "fetch", "completed") < position(changes, transform, "running")
            assert position(changes, transform, "completed") < position(changes, "publish", "running")
        assert live[-1] == "finished"
        # the page shows "finished" before its last read of the log (polling reads it every other
        # second, and once more on the end): wait for the lines, not just the indicator
        wait_for(lambda p=page: p.inner_text("#log").count("node completed") >= 4, 10, "the log's last lines")
        assert page.eval_on_selector("#progress-bar", "e => e.style.width") == "100%"
    assert "polling" not in history(streamed)[1], "the event stream worked: no fallback to polling"


def test_the_list_links_to_the_instance_page(db, live_api, browser) -> None:
    assert live_api.post("/api/v1/definitions", PIPELINE).status_code == 201
    instance_id = live_api.post("/api/v1/instances", {"workflow": "ui-demo", "start": False}).json()["id"]
    page = open_page(browser, f"{live_api.url}/ui/")
    row = f'#instances tr[data-instance-id="{instance_id}"]'
    page.wait_for_selector(row, timeout=15_000)
    assert "ui-demo" in page.inner_text(row) and "pending" in page.inner_text(row)
    page.click(f"{row} a")
    page.wait_for_url(f"**/ui/instances/{instance_id}")
    wait_for(lambda: len(node_states(page)) == 4, 15, "the graph to be drawn")


def test_with_api_tokens_the_login_form_opens_the_page_and_its_event_stream(db, browser) -> None:
    api = LiveApi(Settings.from_env().with_overrides(api_tokens=("ui-secret",)))
    try:
        headers = {"Authorization": "Bearer ui-secret"}
        assert api.post("/api/v1/definitions", PIPELINE, headers=headers).status_code == 201
        created = api.post("/api/v1/instances", {"workflow": "ui-demo", "start": False}, headers=headers)
        instance_id = created.json()["id"]
        assert api.get(f"/api/v1/instances/{instance_id}").status_code == 401

        page = open_page(browser, f"{api.url}/ui/instances/{instance_id}")
        page.wait_for_url(re.compile(r"/ui/login\?next=/ui/instances/"))
        page.fill("#login-token", "wrong")
        page.click("#login button[type=submit]")
        wait_for(lambda: "not accepted" in page.inner_text("#login-message"), 10, "the refusal")
        page.fill("#login-token", "ui-secret")
        page.click("#login button[type=submit]")
        page.wait_for_url(f"{api.url}/ui/instances/{instance_id}")  # back where it was sent from
        wait_for(lambda: len(node_states(page)) == 4, 15, "the graph drawn with the session cookie")
        # the cookie reaches EventSource too: the page is live by events, not by polling
        wait_for(lambda: page.get_attribute("#live", "data-live") == "events", 10, "live by events")
        assert "token" not in page.url and "ui-secret" not in page.url
        assert "orch_session" not in page.evaluate("document.cookie"), "HttpOnly: no script reads it"
        (cookie,) = [c for c in page.context.cookies() if c["name"] == "orch_session"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and "ui-secret" not in cookie["value"]

        page.click("#logout")
        page.wait_for_url(re.compile(r"/ui/login$"))
        assert not [c for c in page.context.cookies() if c["name"] == "orch_session"]
    finally:
        api.close()
