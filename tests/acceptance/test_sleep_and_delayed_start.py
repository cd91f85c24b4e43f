"""Sleep nodes and delayed starts on real workers and beat: a sleep frees its worker slot and fires at
the time its `until` renders to (one that renders to no time fails the node, not retried); a
`startAt` a few seconds ahead starts within the sweep interval of it, a past one at once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from orchestrator.models import utcnow
from tests.acceptance.helpers import define, nodes, runs, start
from tests.support.fixtures import FAST
from tests.support.services import wait_for

INTERVAL = float(FAST["ORCH_RECOVERY_INTERVAL"])
NAP = {
    "name": "nap-until",
    "version": "1.0.0",
    "inputs": {"wakeAt": {"type": "string", "required": True}},
    "nodes": [
        {"id": "nap", "type": "sleep", "until": "${input.wakeAt}"},
        {
            "id": "after",
            "type": "task",
            "executor": "tests.work",
            "dependsOn": ["nap"],
            "config": {"seconds": 0},
        },
    ],
}
WORK = {
    "name": "just-work",
    "version": "1.0.0",
    "nodes": [{"id": "only", "type": "task", "executor": "tests.work", "config": {"seconds": 0}}],
}


def test_a_sleep_frees_its_slot_and_fires_at_its_rendered_until(db, live_api, processes):
    processes.worker("w1", concurrency=1)
    processes.beat()
    define(live_api, NAP)
    define(live_api, WORK)
    wake_at = utcnow() + timedelta(seconds=3)
    napping = start(live_api, "nap-until", {"wakeAt": (wake_at + timedelta(hours=2)).isoformat() + "+02:00"})
    broken = start(live_api, "nap-until", {"wakeAt": "half past nine"})
    wait_for(lambda: nodes(db, napping)["nap"].status == "waiting", 30, "the sleep to wait")

    other = start(live_api, "just-work")  # the only slot is free while the sleep waits
    assert live_api.wait_status(other, timeout=30)["status"] == "completed"
    assert nodes(db, napping)["nap"].status == "waiting"

    assert live_api.wait_status(napping, timeout=30)["status"] == "completed"
    rows = nodes(db, napping)
    assert rows["nap"].output == {"sleptUntil": wake_at.isoformat() + "Z"}
    late = (rows["nap"].finished_at - wake_at).total_seconds()
    print(f"\nsleep until +3 s: fired {late:.3f}s after it (sweep interval {INTERVAL:g}s)")
    assert 0 <= late <= INTERVAL + 0.5
    assert rows["after"].started_at >= wake_at and runs(db, napping) == {"after": 1}
    failed = live_api.wait_status(broken, timeout=30)
    error = nodes(db, broken)["nap"].error
    assert failed["status"] == "failed" and error["code"] == "TEMPLATE_ERROR", error
    assert "'half past nine'" in error["message"] and nodes(db, broken)["nap"].failures == 1


def test_a_start_at_starts_within_the_sweep_interval_of_it_and_a_past_one_at_once(db, live_api, processes):
    processes.worker("w1")
    processes.beat()
    define(live_api, WORK)
    start_at = utcnow() + timedelta(seconds=3)
    delayed = start(live_api, "just-work", startAt=start_at.isoformat() + "Z")
    past = start(live_api, "just-work", startAt="2020-01-01T00:00:00Z")

    assert live_api.wait_status(past, timeout=30)["status"] == "completed"
    assert _started_at(live_api, past) < start_at  # at once, not held back
    assert live_api.wait_status(delayed, timeout=30)["status"] == "completed"

    late = (_started_at(live_api, delayed) - start_at).total_seconds()
    print(f"\nstartAt +3 s: started {late:.3f}s after it (sweep interval {INTERVAL:g}s)")
    assert 0 <= late <= INTERVAL + 0.5


def _started_at(api: Any, instance_id: str) -> datetime:
    return datetime.fromisoformat(api.get(f"/api/v1/instances/{instance_id}").json()["startedAt"][:-1])
