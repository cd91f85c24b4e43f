"""A sleep is a row, not a process: SIGKILL of every worker and beat while it waits loses nothing, and
started again after its time, the system fires it once (its successor runs once). On RabbitMQ the
killed worker's early wake-up message comes back at once and races the sweep; one of them fires it."""

from __future__ import annotations

import pytest

from orchestrator.models import utcnow
from tests.acceptance.helpers import define, log_messages, nodes, runs, start
from tests.support.services import wait_for

FLOW = {
    "name": "chaos-nap",
    "version": "1.0.0",
    "nodes": [
        {"id": "nap", "type": "sleep", "duration": 3000},
        {
            "id": "after",
            "type": "task",
            "executor": "tests.work",
            "dependsOn": ["nap"],
            "config": {"seconds": 0},
        },
    ],
}


@pytest.mark.both_brokers
def test_a_sleep_survives_sigkill_of_every_worker_and_beat_and_fires_once_after_restart(
    db, live_api, processes
):
    worker, beat = processes.worker("w1"), processes.beat()
    define(live_api, FLOW)
    instance_id = start(live_api, FLOW["name"])
    wait_for(lambda: nodes(db, instance_id)["nap"].status == "waiting", 30, "the sleep to wait")
    worker.kill()
    beat.kill()
    wake_at = nodes(db, instance_id)["nap"].wake_at
    wait_for(lambda: utcnow() > wake_at, 10, "the wake-up time to pass while nothing runs")
    assert nodes(db, instance_id)["nap"].status == "waiting"

    processes.worker("w1")
    processes.beat()

    assert live_api.wait_status(instance_id, timeout=30)["status"] == "completed"
    assert log_messages(db, instance_id, "nap").count("node completed") == 1
    assert runs(db, instance_id) == {"after": 1}
    assert nodes(db, instance_id)["after"].started_at > wake_at
