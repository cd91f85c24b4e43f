"""The DAG page tells the truth while an instance runs and after it fails, in a real headless Chromium
with real workers: the elapsed time counts up while a node is held at a gate and stops at the end; a
failed instance shows the nodes that could no longer run as skipped, with the reason, and its progress
as the status endpoint counts it; a long executor name never hides a node's state.
"""

from __future__ import annotations

from typing import Any

from tests.acceptance.helpers import define
from tests.support import flaky_executors, gates
from tests.support.gates import open_gate
from tests.support.services import wait_for
from tests.ui import browser as ui
from tests.ui import long_names
from tests.ui.browser import elapsed_ms, node_box, node_states, open_page

assert gates.EXECUTOR and flaky_executors.EXECUTOR  # registered here too: the API checks executors
WORKER_MODULES = flaky_executors.MODULES + ",tests.ui.long_names"


def _node(node_id: str, executor: str, *deps: str, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "task", "executor": executor, "dependsOn": list(deps), "config": config}


def _create(api: Any, workflow: str, **options: Any) -> str:
    response = api.post("/api/v1/instances", {"workflow": workflow, **options})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _status(api: Any, instance_id: str) -> dict[str, Any]:
    return dict(api.get(f"/api/v1/instances/{instance_id}/status").json())


def _page_status(page: Any) -> str | None:
    return page.get_attribute("#instance-status", "data-status")


def _grows(read: Any, what: str) -> tuple[int, int]:
    """Two readings of a shown duration, the second taken once it has changed: both above 0."""
    first = wait_for(lambda: (read() or 0) > 0 and read(), 10, f"{what} above 0")
    second = wait_for(lambda: (read() or 0) != first and read(), 10, f"{what} to change")
    return first, second


def test_the_elapsed_time_counts_up_while_a_node_runs_and_stops_at_the_end(
    db, live_api, processes, browser, tmp_path
) -> None:
    processes.worker("w1", ORCH_EXECUTOR_MODULES=gates.MODULES)
    gate = tmp_path / "gate"
    define(
        live_api,
        {
            "name": "ui-elapsed",
            "version": "1.0.0",
            "nodes": [_node("hold", gates.EXECUTOR, gate=str(gate)), _node("after", "tests.count", "hold")],
        },
    )
    instance_id = _create(live_api, "ui-elapsed")
    page = open_page(browser, f"{live_api.url}/ui/instances/{instance_id}")
    wait_for(lambda: node_states(page).get("hold") == "running", 30, "hold running on the page")

    # nothing changes on the server while the node waits at its gate: the page counts by itself
    first, second = _grows(lambda: elapsed_ms(page), "the elapsed time")
    assert second > first
    page.click('#dag .node[data-node-id="hold"]')
    took = _grows(lambda: ui.shown_ms(page.inner_text("#node-duration")), "the running node's duration")
    assert took[1] > took[0]
    assert _status(live_api, instance_id)["status"] == "running" and node_states(page)["hold"] == "running"

    open_gate(gate)
    wait_for(lambda: _page_status(page) == "completed", 30, "the page to see the end")
    wait_for(lambda: page.get_attribute("#live", "data-live") == "finished", 10, "the live indicator")
    status = _status(live_api, instance_id)
    final = elapsed_ms(page)
    # startedAt to finishedAt, shown to the tenth of a second below it (a count never jumps ahead)
    assert final is not None and 0 <= status["executionTimeMs"] - final < 100, (final, status)
    assert final >= second


def test_a_failed_instance_shows_its_unreachable_node_as_skipped_with_the_reason(
    db, live_api, processes, browser, tmp_path
) -> None:
    """extract (a long executor name) -> load (fails for good, once let through its gate) -> report;
    and notify, after extract, skipped by its `when`. report can no longer run: skipped, "upstream
    failed". Progress counts extract, load and notify (3 of 4), as the status endpoint does."""
    processes.worker("w1", ORCH_EXECUTOR_MODULES=WORKER_MODULES)
    gate, flag = tmp_path / "gate", tmp_path / "never-set"
    define(
        live_api,
        {
            "name": "ui-failure",
            "version": "1.0.0",
            "nodes": [
                _node("extract", long_names.EXECUTOR),
                _node("load", flaky_executors.EXECUTOR, "extract", flag=str(flag), gate=str(gate)),
                _node("report", "tests.count", "load"),
                {**_node("notify", "tests.count", "extract"), "when": "${input.notify}"},
            ],
        },
    )
    instance_id = _create(live_api, "ui-failure", input={"notify": False}, start=False)
    url = f"{live_api.url}/ui/instances/{instance_id}"
    pages = {"events": open_page(browser, url), "polling": open_page(browser, url + "?live=poll")}
    for mode, page in pages.items():
        wait_for(lambda p=page, m=mode: p.get_attribute("#live", "data-live") == m, 15, f"live by {mode}")
    assert live_api.post(f"/api/v1/instances/{instance_id}/start").status_code == 200

    # notify is skipped by its own condition before load is let through: no race with the failure
    for page in pages.values():
        wait_for(
            lambda p=page: (states := node_states(p))["notify"] == "skipped" and states["load"] == "running",
            30,
            "notify skipped and load running",
        )
        notify = node_box(page, "notify")
        assert notify["skip"] == "condition-false" and "condition false" in notify["detail"]["text"]

    open_gate(gate)
    status = live_api.wait_status(instance_id)
    assert status["status"] == "failed" and sorted(status["skippedNodes"]) == ["notify", "report"], status
    assert status["progress"] == 75, status  # extract, load and notify finished; report never ran

    for mode, page in pages.items():
        wait_for(lambda p=page: _page_status(p) == "failed", 30, f"the page ({mode}) to see the failure")
        wait_for(lambda p=page: node_states(p).get("report") == "skipped", 10, f"report skipped ({mode})")
        assert node_states(page) == {
            "extract": "completed",
            "load": "failed",
            "report": "skipped",
            "notify": "skipped",
        }
        report = node_box(page, "report")
        assert report["skip"] == "upstream-failed", (mode, report)
        assert report["detail"]["text"] == "· upstream failed", (mode, report)
        assert "state: skipped (upstream failed)" in report["title"]
        # the bar agrees with the status endpoint: a node that never ran is not finished
        assert page.eval_on_selector("#progress-bar", "e => e.style.width") == "75%", mode
        assert page.inner_text("#counts") == "3/4 finished, 0 running, 2 skipped"

        page.click('#dag .node[data-node-id="report"]')
        wait_for(lambda p=page: "UPSTREAM_FAILED" in p.inner_text("#details"), 10, "report's details")
        assert "upstream failed" in page.inner_text("#details .skip-reason")

        # the long executor name is shortened with an ellipsis (whole in the tooltip); no state is
        extract = node_box(page, "extract")
        assert extract["executor"]["text"].endswith("…"), extract
        assert extract["executor"]["text"][:-1] in long_names.EXECUTOR
        assert f"executor: {long_names.EXECUTOR}" in extract["title"]
        for node_id in ("extract", "load", "report", "notify"):
            ui.assert_state_fully_visible(node_box(page, node_id))
