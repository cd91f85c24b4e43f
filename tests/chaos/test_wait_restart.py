"""A `wait` node survives the death of the whole system: every worker and beat SIGKILLed while it
waits, started again, and the sweeps that follow leave it waiting; a signal then completes it."""

from __future__ import annotations

from tests.acceptance.helpers import define, nodes, start
from tests.acceptance.test_wait_nodes import approval, signal, waiting
from tests.support.services import wait_for


def test_a_wait_outlives_every_worker_and_beat_and_a_signal_then_completes_it(
    db, live_api, processes
) -> None:
    worker, beat = processes.worker("w1"), processes.beat()
    define(live_api, approval("wait-restart"))
    instance_id = start(live_api, "wait-restart")
    waiting(live_api, db, instance_id)

    worker.kill()
    beat.kill()
    processes.worker("w2")
    processes.beat("beat-again")
    # sweeps have run since the restart once the killed worker is marked gone
    wait_for(
        lambda: (
            {w["id"]: w["status"] for w in live_api.get("/api/v1/workers").json()["workers"]}.get("w1")
            == "gone"
        ),
        30,
        "the sweep to mark the killed worker gone",
    )
    assert (nodes(db, instance_id)["approve"].status, nodes(db, instance_id)["approve"].attempt) == (
        "waiting",
        1,
    )

    assert signal(live_api, instance_id, {"ok": 1}).json()["delivered"] is True
    assert live_api.wait_status(instance_id)["status"] == "completed"
    assert nodes(db, instance_id)["after"].worker_id == "w2"
