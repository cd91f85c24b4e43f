"""Priorities reach the broker: with the only worker slot busy, a `critical` instance queued after
ten `low` ones runs first, on Redis (priority steps, 0 first) and on RabbitMQ (a classic queue with
`x-max-priority`, highest first; the reverse mapping, workers/delivery.py)."""

from __future__ import annotations

import pytest

from tests.acceptance.helpers import define, effects, nodes, start
from tests.support import gates
from tests.support.gates import open_gate
from tests.support.services import wait_for

assert gates.EXECUTOR  # registered in the test process too: the API checks executors

SINGLE = {
    "name": "single",
    "version": "1.0.0",
    "nodes": [{"id": "only", "type": "task", "executor": "tests.count"}],
}


@pytest.mark.both_brokers
def test_with_the_only_worker_busy_a_critical_instance_queued_after_ten_low_ones_runs_first(
    db, live_api, processes, tmp_path
):
    gate = tmp_path / "gate"
    define(
        live_api,
        {
            "name": "hold",
            "version": "1.0.0",
            "nodes": [
                {"id": "hold", "type": "task", "executor": gates.EXECUTOR, "config": {"gate": str(gate)}}
            ],
        },
    )
    define(live_api, SINGLE)
    # one slot: the order of execution is the order of delivery
    processes.worker("w1", concurrency=1, ORCH_EXECUTOR_MODULES=gates.MODULES)
    busy = start(live_api, "hold")
    wait_for(lambda: effects(db, busy, "entered"), 30, "the worker to be busy with the gated node")

    lows = [start(live_api, "single", priority="low") for _ in range(10)]
    critical = start(live_api, "single", priority="critical")
    open_gate(gate)

    for instance_id in [busy, *lows, critical]:
        assert live_api.wait_status(instance_id)["status"] == "completed"
    started = {i: nodes(db, i)["only"].started_at for i in [*lows, critical]}
    assert started[critical] < min(started[i] for i in lows), started
