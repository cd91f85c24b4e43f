"""`wait` nodes with real workers and beat: a signal completes a waiting node, before or after it is
reached; its timeout fails it with TIMEOUT or completes it with `onTimeout`; a cancel ends it; and while
it waits it holds no worker slot."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.client.http import parse_events
from tests.acceptance.helpers import define, nodes, runs, start
from tests.support import gates
from tests.support.gates import open_gate
from tests.support.services import wait_for

pytestmark = [pytest.mark.mysql, pytest.mark.workers]

GATES = {"ORCH_EXECUTOR_MODULES": gates.MODULES}


def approval(name: str, first: dict[str, Any] | None = None, **wait_options: Any) -> dict[str, Any]:
    """`approve` waits for the signal `approval` (after `first`, when given), then `after` runs."""
    before = [first] if first else []
    depends = {"dependsOn": [first["id"]]} if first else {}
    return {
        "name": name,
        "version": "1.0.0",
        "nodes": [
            *before,
            {"id": "approve", "type": "wait", "signal": "approval", **depends, **wait_options},
            {"id": "after", "type": "task", "executor": "noop", "dependsOn": ["approve"]},
        ],
    }


def signal(api: Any, instance_id: str, body: Any, name: str = "approval") -> Any:
    return api.post(f"/api/v1/instances/{instance_id}/signals/{name}", body)


def waiting(api: Any, db: Any, instance_id: str) -> None:
    wait_for(lambda: nodes(db, instance_id)["approve"].status == "waiting", 30, "the node to wait")


def test_a_signal_before_or_after_the_node_is_reached_completes_it(db, live_api, processes, tmp_path) -> None:
    processes.worker("w1", **GATES)
    gate = tmp_path / "gate"
    first = {"id": "first", "type": "task", "executor": gates.EXECUTOR, "config": {"gate": str(gate)}}
    define(live_api, approval("wait-signal", first))
    early, late = start(live_api, "wait-signal"), start(live_api, "wait-signal")
    wait_for(lambda: runs(db, early, "entered")["first"] == 1, 30, "the first node to start")

    answer = signal(live_api, early, {"by": "early"})
    assert answer.status_code == 202, answer.text
    assert answer.json() == {
        "instanceId": early,
        "signal": "approval",
        "delivered": False,
        "nodeId": "approve",
    }
    assert signal(live_api, early, {"by": "twice"}).status_code == 409  # one is stored already
    open_gate(gate)
    assert live_api.wait_status(early)["status"] == "completed"
    assert nodes(db, early)["approve"].output == {"by": "early"}

    waiting(live_api, db, late)
    status = live_api.get(f"/api/v1/instances/{late}/status").json()
    assert (status["waitingNodes"], status["progress"]) == (["approve"], 33)
    assert signal(live_api, late, {"by": "late"}).json()["delivered"] is True
    assert live_api.wait_status(late)["status"] == "completed"
    assert nodes(db, late)["approve"].output == {"by": "late"}
    assert signal(live_api, late, {}).status_code == 409  # the instance has ended


def test_a_timeout_fails_with_timeout_or_completes_with_on_timeout(db, live_api, processes) -> None:
    processes.worker("w1")
    processes.beat()  # its sweep fires the timeouts
    define(live_api, approval("wait-fails", timeout=500))
    define(live_api, approval("wait-given", timeout=500, onTimeout={"output": {"approved": False}}))
    fails, given = start(live_api, "wait-fails"), start(live_api, "wait-given")

    failed = live_api.wait_status(fails)
    assert (failed["status"], failed["error"]["details"]["code"]) == ("failed", "TIMEOUT")
    assert live_api.wait_status(given)["status"] == "completed"
    assert nodes(db, given)["approve"].output == {"approved": False}


def test_a_cancel_while_waiting_cancels_the_node_and_the_stream_shows_both(db, live_api, processes) -> None:
    processes.worker("w1")
    define(live_api, approval("wait-cancel"))
    instance_id = start(live_api, "wait-cancel")
    waiting(live_api, db, instance_id)
    stream = live_api.get(f"/api/v1/instances/{instance_id}/events", stream=True)
    events = parse_events(stream.iter_lines(decode_unicode=True))
    first_status = next(data for name, data, _ in events if name == "status")  # after the node events
    assert first_status["waitingNodes"] == ["approve"]

    assert live_api.post(f"/api/v1/instances/{instance_id}/cancel").status_code == 200
    assert nodes(db, instance_id)["approve"].status == "cancelled"
    assert signal(live_api, instance_id, {}).status_code == 409
    rest = list(events)
    assert [data["status"] for name, data, _ in rest if name == "node" and data["nodeId"] == "approve"] == [
        "cancelled"
    ]
    assert rest[-1] == ("end", {"status": "cancelled"}, None)


def test_a_waiting_node_holds_no_worker_slot(db, live_api, processes) -> None:
    processes.worker("w1", concurrency=1)
    define(live_api, approval("wait-slot"))
    define(live_api, {"name": "wait-other", "version": "1.0.0", "nodes": [{"id": "n", "executor": "noop"}]})
    waits = start(live_api, "wait-slot")
    waiting(live_api, db, waits)

    assert live_api.wait_status(start(live_api, "wait-other"))["status"] == "completed"
    assert nodes(db, waits)["approve"].status == "waiting"


def test_the_api_names_what_it_refuses(live_api) -> None:
    define(live_api, approval("wait-refusals"))
    instance_id = start(live_api, "wait-refusals", start=False)

    unknown = signal(live_api, "no-such-instance", {})
    assert unknown.status_code == 404, unknown.text
    other = signal(live_api, instance_id, {}, name="nobody-waits")
    assert other.status_code == 404 and other.json()["error"]["details"][0]["field"] == "name"
    plain = live_api.post(
        f"/api/v1/instances/{instance_id}/signals/approval", data="x", headers={"Content-Type": "text/plain"}
    )
    assert plain.status_code == 415
    bad = {"name": "wait-no-signal", "version": "1.0.0", "nodes": [{"id": "w", "type": "wait"}]}
    refused = live_api.post("/api/v1/definitions", bad)
    assert refused.status_code == 422 and refused.json()["error"]["details"][0]["field"] == "nodes[0].signal"
