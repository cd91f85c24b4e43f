"""Flow control on real workers, with no beat (so no recovery sweep) and a long recovery interval:
a cancel of an instance whose node holds a slot sends the next waiting node at once, and a cancelled
attempt whose executor is still running keeps its slot until it stops (orchestrator/slot_holders.py)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, select

from orchestrator.models import InstanceRow, NodeRow
from tests.acceptance.helpers import define, effects, start
from tests.support.executors import open_gate
from tests.support.services import wait_for

NO_SWEEP = {"ORCH_RECOVERY_INTERVAL": "600"}  # and no beat is started: no sweep runs at all
PROMPT = 10.0  # s: a release after a commit, on a loaded two-core machine; the sweep would take 600


def _limit(api: Any, name: str) -> dict[str, Any]:
    entries = api.get("/api/v1/limits").json()["limits"]
    return next(e for e in entries if e["name"] == name and e["kind"] == "concurrency")


def _node(engine: Engine, instance_id: str, node_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(NodeRow.__table__).where(NodeRow.instance_id == instance_id, NodeRow.node_id == node_id)
        ).one()


def _status(engine: Engine, instance_id: str) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(InstanceRow.status).where(InstanceRow.id == instance_id)).scalar_one())


def _waits_for_limit(api: Any, instance_id: str, node_id: str, name: str) -> bool:
    waiting = api.get(f"/api/v1/instances/{instance_id}/status").json()["waitingFor"]
    return bool(waiting.get(node_id) == {"limit": name, "kind": "concurrency"})


def test_a_cancel_of_an_instance_holding_a_slot_sends_the_next_waiting_node_promptly(
    db, live_api, processes, redis_client
):
    processes.worker("w1", concurrency=3, **NO_SWEEP)
    define(
        live_api,
        {
            "name": "release-child",
            "version": "1.0.0",
            "nodes": [{"id": "c", "executor": "tests.gated", "config": {"gate": "child"}}],
        },
    )
    define(
        live_api,
        {
            "name": "release-parent",
            "version": "1.0.0",
            "nodes": [
                {
                    "id": "sub",
                    "type": "subworkflow",
                    "config": {"workflow": {"name": "release-child"}},
                    "concurrency": 1,
                }
            ],
        },
    )
    gate = "node:release-parent/sub"
    first = start(live_api, "release-parent")
    wait_for(lambda: _node(db, first, "sub").status == "running", 30, "the first sub-workflow node to run")
    second = start(live_api, "release-parent")
    wait_for(lambda: _waits_for_limit(live_api, second, "sub", gate), 30, "the second to wait for the slot")

    response = live_api.post(f"/api/v1/instances/{first}/cancel", {})
    assert response.status_code == 200, response.text
    cancelled_at = time.monotonic()
    wait_for(lambda: _node(db, second, "sub").status == "running", PROMPT, "the waiting node to be sent")
    print(f"cancel of the slot's holder -> the next node running: {time.monotonic() - cancelled_at:.2f}s")
    open_gate(redis_client, "child")
    wait_for(lambda: _status(db, second) == "completed", 30, "the second instance to complete")


def test_a_cancelled_running_attempt_keeps_its_slot_until_its_executor_stops(
    db, live_api, processes, redis_client
):
    processes.worker("w1", concurrency=3, **NO_SWEEP)
    define(
        live_api,
        {
            "name": "held-run",
            "version": "1.0.0",
            # `tests.work` at a gate does not look at should_stop: it runs until the gate opens
            "nodes": [{"id": "a", "executor": "tests.work", "config": {"gate": "run"}, "concurrency": 1}],
        },
    )
    gate = "node:held-run/a"
    first = start(live_api, "held-run")
    wait_for(lambda: effects(db, first, "gate"), 30, "the first node at its gate")
    second = start(live_api, "held-run")
    wait_for(lambda: _waits_for_limit(live_api, second, "a", gate), 30, "the second to wait for the slot")

    response = live_api.post(f"/api/v1/instances/{first}/cancel", {})
    assert response.status_code == 200, response.text
    assert _status(db, first) == "cancelled"
    # the executor still runs: the slot stays taken and the next node waits
    entry = _limit(live_api, gate)
    assert (entry["inUse"], entry["waiting"]) == (1, 1), entry
    assert _node(db, second, "a").status == "queued"
    open_gate(redis_client, "run")
    stopped_at = time.monotonic()
    wait_for(
        lambda: _status(db, second) == "completed", PROMPT + 5, "the next node to run once the first stopped"
    )
    print(f"cancelled attempt's executor stopped -> the next one done: {time.monotonic() - stopped_at:.2f}s")
    assert _limit(live_api, gate)["inUse"] == 0
