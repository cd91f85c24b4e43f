"""`/api/v1/limits`, limits in definitions (422 naming the field), an instance's `waitingFor` under a
concurrency key, and the limit metrics."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert

from orchestrator import limit_report, scheduling
from orchestrator.executors import executor
from orchestrator.models import LimitRow
from tests.api.helpers import assert_error


@executor("tests.api.limited", concurrency=3, rate="5/s")
def _limited(ctx: Any, config: dict[str, Any]) -> dict[str, Any]:
    return {}


def _definition(name: str, **extra: Any) -> dict[str, Any]:
    node = {"id": "a", "executor": "noop", **extra.pop("node", {})}
    return {"name": extra.pop("workflow", name), "version": "1.0.0", "nodes": [node], **extra}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"node": {"concurrency": 0}}, "nodes[0].concurrency"),
        ({"node": {"concurrency": -2}}, "nodes[0].concurrency"),
        ({"node": {"concurrency": "2"}}, "nodes[0].concurrency"),
        ({"node": {"rate": "abc"}}, "nodes[0].rate"),
        ({"node": {"rate": "0/s"}}, "nodes[0].rate"),
        ({"node": {"rate": 10}}, "nodes[0].rate"),
        ({"node": {"rate": "1/" + "9" * 400 + "h"}}, "nodes[0].rate"),
        ({"node": {"rate": "1/99999999999999999999h"}}, "nodes[0].rate"),
        ({"node": {"rate": "1/2d"}}, "nodes[0].rate"),
        ({"node": {"rate": "10/" + "0" * 40 + "1s"}}, "nodes[0].rate"),
        ({"workflow": "w" * 128, "node": {"id": "n" * 128, "concurrency": 2}}, "nodes[0].concurrency"),
        ({"workflow": "w" * 128, "node": {"id": "n" * 128, "rate": "1/s"}}, "nodes[0].rate"),
        ({"concurrency": {"key": "${input.customer", "limit": 1}}, "concurrency.key"),
        ({"concurrency": {"key": "customer", "limit": 1}}, "concurrency.key"),
        ({"concurrency": {"key": "${nodes.a.output.x}", "limit": 1}}, "concurrency.key"),
        ({"concurrency": {"key": "${input.customer}", "limit": 0}}, "concurrency.limit"),
        ({"concurrency": {"key": "${input.customer}"}}, "concurrency.limit"),
        ({"concurrency": 3}, "concurrency"),
    ],
)
def test_a_bad_limit_is_422_naming_its_field(live_api, body, field):
    error = assert_error(live_api.post("/api/v1/definitions", _definition("bad-limit", **body)), 422)
    assert field in [d["field"] for d in error["details"]], error


def test_limits_lists_declared_and_used_limits_with_their_use(live_api, db):
    entries = live_api.get("/api/v1/limits").json()["limits"]
    declared = {(e["name"], e["kind"]): e for e in entries}
    assert declared["executor:tests.api.limited", "concurrency"] == {
        "name": "executor:tests.api.limited",
        "kind": "concurrency",
        "limit": 3,
        "inUse": 0,
        "waiting": 0,
        "source": "code",
    }
    assert declared["executor:tests.api.limited", "rate"]["limit"] == "5/s"
    body = _definition(
        "keyed", inputs={"customer": {"type": "string"}}, concurrency={"key": "${input.customer}", "limit": 1}
    )
    assert live_api.post("/api/v1/definitions", body).status_code == 201
    first, second = (
        live_api.post("/api/v1/instances", {"workflow": "keyed", "input": {"customer": "c7"}}).json()["id"]
        for _ in range(2)
    )
    # no worker runs here: start both as a `schedule` message would
    assert scheduling.start(db, first).dispatches
    assert scheduling.start(db, second).dispatches == []
    held = live_api.get(f"/api/v1/instances/{second}").json()
    assert held["status"] == "pending"
    assert held["waitingFor"] == {"limit": "key:keyed:c7", "kind": "concurrency"}
    assert live_api.get(f"/api/v1/instances/{first}").json()["waitingFor"] is None
    entries = {e["name"]: e for e in live_api.get("/api/v1/limits").json()["limits"]}
    assert entries["key:keyed:c7"] == {
        "name": "key:keyed:c7",
        "kind": "concurrency",
        "limit": 1,
        "inUse": 1,
        "waiting": 1,
        "source": "definition",
    }
    scraped = live_api.get("/metrics").text
    assert 'orchestrator_limit_in_use{kind="concurrency",limit="key:keyed:c7"} 1.0' in scraped
    assert 'orchestrator_limit_waiting{kind="concurrency",limit="key:keyed:c7"} 1.0' in scraped


def test_an_input_the_key_cannot_be_made_of_is_422(live_api):
    body = _definition("keyed-required", concurrency={"key": "${input.customer}", "limit": 1})
    assert live_api.post("/api/v1/definitions", body).status_code == 201
    error = assert_error(live_api.post("/api/v1/instances", {"workflow": "keyed-required", "input": {}}), 422)
    assert error["details"][0]["field"].startswith("input"), error


def test_a_page_of_limits_reads_no_idle_key_and_looks_at_a_bounded_number_of_quiet_ones(live_api, db):
    """Keys nothing runs or waits under are not listed: the rows of idle ones (no instance open,
    left until the sweep prunes them) are not read, and a page looks at no more than its size plus
    `MAX_SKIPPED` of those held by instances that do not run (pending, not started); it then ends
    early, its `nextCursor` after the last one it looked at. Before, each such key cost two
    queries on every page (10,000 idle keys: a 10 s request)."""
    quiet = limit_report.MAX_SKIPPED + 20
    definition = _definition("keyed", concurrency={"key": "${input.customer}", "limit": 1})
    assert live_api.post("/api/v1/definitions", definition).status_code == 201
    for first in range(0, quiet, 100):
        items = [
            {"workflow": "keyed", "input": {"customer": f"q{i:04d}"}, "start": False}
            for i in range(first, min(first + 100, quiet))
        ]
        results = live_api.post("/api/v1/instances/batch", {"instances": items}).json()["results"]
        assert {r["status"] for r in results} == {201}, results
    rows = [{"kind": "concurrency", "name": f"key:keyed:q{i:04d}", "value": "1"} for i in range(quiet)]
    rows += [{"kind": "concurrency", "name": f"key:keyed:idle{i:04d}", "value": "1"} for i in range(quiet)]
    rows.append({"kind": "concurrency", "name": "node:keyed/a", "value": "2"})
    with db.begin() as conn:
        conn.execute(insert(LimitRow), rows)

    # the idle keys sort before the quiet ones ("idle" < "q"): not read, so not counted either
    start = "concurrency:key:keyed:"
    page = live_api.get("/api/v1/limits", params={"limit": 1, "cursor": start}).json()
    assert page["limits"] == []
    last_looked = f"key:keyed:q{limit_report.MAX_SKIPPED:04d}"
    assert page["nextCursor"] == f"concurrency:{last_looked}"
    page = live_api.get("/api/v1/limits", params={"limit": 1, "cursor": page["nextCursor"]}).json()
    assert [e["name"] for e in page["limits"]] == ["node:keyed/a"]
    assert page["nextCursor"] is None
