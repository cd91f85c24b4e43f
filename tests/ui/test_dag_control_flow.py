"""The DAG page with the control-flow node types, in a real headless Chromium against the real API and
workers: a map's box counts its items done as they end and its details show each item's state; a
wait node shows the signal it waits for until the signal completes it; a sleep shows until when."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.executors import open_gate
from tests.support.services import wait_for
from tests.ui.browser import node_states, open_page

GATES = [f"item-{i}" for i in range(6)]
MAP = {
    "name": "ui-map",
    "version": "1.0.0",
    "nodes": [
        {
            "id": "each",
            "type": "map",
            "over": "${input.gates}",
            "maxConcurrency": 2,
            "node": {"executor": "tests.gated", "config": {"gate": "${item}"}},
        }
    ],
}
HOLD = {
    "name": "ui-hold",
    "version": "1.0.0",
    "nodes": [
        {"id": "approve", "type": "wait", "signal": "approval"},
        {"id": "nap", "type": "sleep", "duration": 6000, "dependsOn": ["approve"]},
    ],
}
SQUARES = "els => els.map(e => e.dataset.status)"
# Counts the redraws of the details after which the map's squares were gone: a redraw keeps them
# until the next read of the items replaces them, so this stays 0
WATCH_SQUARES = """() => {
  window.squaresGone = 0;
  new MutationObserver(() => {
    if (!document.querySelector("#items .item-grid li")) window.squaresGone += 1;
  }).observe(document.querySelector("#details"), { childList: true, subtree: true });
}"""


def _box_text(page: Any, node_id: str) -> str:
    return str(page.text_content(f'#dag .node[data-node-id="{node_id}"] .sub'))


def _squares(page: Any) -> list[str]:
    return list(page.eval_on_selector_all("#items .item-grid li[data-status]", SQUARES))


def _item_states(live_api: Any, instance_id: str) -> list[str]:
    body = live_api.get(f"/api/v1/instances/{instance_id}/nodes/each/items").json()
    return [item["status"] for item in body["items"]]


@pytest.mark.parametrize("live", ["events", "poll"])
def test_a_map_box_counts_its_items_and_its_details_show_each_item(
    db, live_api, processes, browser, redis_client, live
) -> None:
    processes.worker("w1", concurrency=2)
    assert live_api.post("/api/v1/definitions", MAP).status_code == 201
    created = live_api.post("/api/v1/instances", {"workflow": "ui-map", "input": {"gates": GATES}})
    instance_id = created.json()["id"]
    # two items hold a worker slot at their gates; maxConcurrency keeps the other four pending
    wait_for(
        lambda: sorted(_item_states(live_api, instance_id)) == ["pending"] * 4 + ["running"] * 2,
        30,
        "two items running, four pending",
    )
    # the event stream moves the counter by the map's `itemsLeft`; polling reads the counters each time
    page = open_page(
        browser, f"{live_api.url}/ui/instances/{instance_id}" + ("?live=poll" if live == "poll" else "")
    )
    wait_for(
        lambda: page.get_attribute("#live", "data-live") == ("polling" if live == "poll" else "events"),
        10,
        "live mode",
    )
    wait_for(lambda: _box_text(page, "each") == "map · 0/6 items", 15, "the map's counter at 0/6")
    page.click('#dag .node[data-node-id="each"]')
    wait_for(lambda: len(_squares(page)) == 6, 10, "a square per item")
    page.evaluate(WATCH_SQUARES)
    squares = _squares(page)
    assert squares == _item_states(live_api, instance_id)
    assert sorted(squares) == ["pending"] * 4 + ["running"] * 2

    for gate in GATES[:2]:
        open_gate(redis_client, gate)
    wait_for(lambda: _box_text(page, "each") == "map · 2/6 items", 15, "the counter moved to 2/6")
    wait_for(lambda: _squares(page).count("completed") == 2, 10, "two squares completed")

    for gate in GATES[2:]:
        open_gate(redis_client, gate)
    wait_for(lambda: _box_text(page, "each") == "map · 6/6 items", 20, "the counter at 6/6")
    wait_for(lambda: node_states(page).get("each") == "completed", 10, "the map completed on the page")
    wait_for(lambda: _squares(page) == ["completed"] * 6, 10, "every square completed")
    assert page.evaluate("window.squaresGone") == 0


def test_a_wait_shows_its_signal_until_signalled_and_a_sleep_shows_until_when(
    db, live_api, processes, browser
) -> None:
    processes.worker("w1")
    assert live_api.post("/api/v1/definitions", HOLD).status_code == 201
    instance_id = live_api.post("/api/v1/instances", {"workflow": "ui-hold"}).json()["id"]
    page = open_page(browser, f"{live_api.url}/ui/instances/{instance_id}")
    wait_for(lambda: node_states(page).get("approve") == "waiting", 30, "the wait node waiting on the page")
    box = page.locator('#dag .node[data-node-id="approve"]')
    wait_for(lambda: 'signal "approval"' in (box.text_content() or ""), 10, "the signal in the box")
    box.click()
    wait_for(
        lambda: 'signal "approval"' in page.inner_text("#details .waiting-for"),
        10,
        "the signal in the details",
    )

    signalled = live_api.post(f"/api/v1/instances/{instance_id}/signals/approval", {"ok": True})
    assert signalled.status_code < 300, signalled.text
    wait_for(lambda: node_states(page).get("approve") == "completed", 15, "the wait completed on the page")
    wait_for(lambda: '"ok": true' in page.inner_text("#details"), 10, "the signal's body as its output")

    wait_for(lambda: node_states(page).get("nap") == "waiting", 15, "the sleep waiting on the page")
    page.click('#dag .node[data-node-id="nap"]')
    wait_for(
        lambda: page.inner_text("#details .waiting-for").startswith("until "),
        10,
        "until when, in the details",
    )
    wait_for(lambda: node_states(page).get("nap") == "completed", 20, "the sleep completed on the page")
    assert "waiting" not in page.inner_text("#details dl")
