"""Every worker stopped at once (SIGTERM, as `docker stop` does) mid-run and started again: nodes
are handed back from their checkpoints, nothing is redone from zero, every instance completes."""

from __future__ import annotations

import signal
import time
from collections import defaultdict

import pytest

from tests.acceptance.helpers import define, start_batch
from tests.chaos import helpers
from tests.support.executors import open_gate
from tests.support.services import wait_for

INSTANCES = 8
TOTAL = 20
HELD_AT = 3  # every copy checkpoints this many steps, then waits until the workers have been stopped
FLOW = {
    "name": "chaos-copy",
    "version": "1.0.0",
    "nodes": [
        {"id": "prepare", "type": "task", "executor": "tests.work", "config": {"seconds": 0.05}},
        {
            "id": "copy",
            "type": "task",
            "executor": "tests.steps",
            "dependsOn": ["prepare"],
            "config": {"total": TOTAL, "delay": 0.05, "gate": "stopped", "gateAt": HELD_AT},
        },
        {"id": "finish", "type": "task", "executor": "tests.work", "dependsOn": ["copy"], "config": {}},
    ],
}


def _steps_per_node(db, instance_ids) -> dict[str, list]:
    steps: dict[str, list] = defaultdict(list)
    for effect in helpers.effect_rows(db, instance_ids, "step"):
        steps[effect.instance_id].append(effect)
    return steps


@pytest.mark.both_brokers
def test_sigterm_to_every_worker_then_restart_resumes_every_node_from_its_checkpoint(
    db, live_api, processes, redis_client
):
    """Two workers run 8 instances of prepare -> copy (20 checkpointed steps) -> finish. When several
    copies are mid-way (held after 3 steps), every worker gets SIGTERM at once; they hand their nodes
    back and exit within the grace period. Started again, they finish every instance; each step was
    done exactly once across attempts and every resumed attempt started from the newest checkpoint."""
    names = ("w1", "w2")
    workers = {name: processes.worker(name, wait=False) for name in names}
    for name, process in workers.items():
        processes.wait_registered(name, process)
    processes.beat()
    define(live_api, FLOW)
    instance_ids = start_batch(live_api, FLOW["name"], INSTANCES)

    def copies_mid_way() -> bool:
        return len({e.instance_id for e in helpers.effect_rows(db, instance_ids, "gate")}) >= 3

    wait_for(copies_mid_way, 60, "three copies mid-way", interval=0.1)
    began = time.monotonic()
    for process in workers.values():
        process.signal(signal.SIGTERM)
    for process in workers.values():
        process.proc.wait(timeout=30)
    stopped_in = time.monotonic() - began
    rows = helpers.node_rows(db, instance_ids)
    assert not [key for key, row in rows.items() if row.status == "running"]
    interrupted = {key[0] for key, row in rows.items() if key[1] == "copy" and row.attempt > 1}
    print(f"\nSIGTERM -> every worker exited: {stopped_in:.2f}s; {len(interrupted)} copies handed back")
    assert len(interrupted) >= 3

    open_gate(redis_client, "stopped")
    for name in names:
        processes.worker(name, wait=False)
    helpers.wait_all_completed(db, instance_ids, timeout=90)

    counts = helpers.assert_each_node_committed_once(db, instance_ids)  # effects: prepare, finish
    steps = _steps_per_node(db, instance_ids)
    rows = helpers.node_rows(db, instance_ids)
    for instance_id in instance_ids:
        done = [int(e.data) for e in steps[instance_id]]
        assert sorted(done) == list(range(TOTAL)), done  # no step lost, none done twice
        row = rows[(instance_id, "copy")]
        earlier = sum(1 for e in steps[instance_id] if e.attempt < row.attempt)
        # the committed attempt started where the attempts before it had checkpointed
        assert row.output == {"done": TOTAL, "resumedFrom": earlier}, (row.output, earlier)
        assert (row.failures, row.handbacks) == (0, 0)  # a graceful hand-back is no failure
    resumed = [rows[(i, "copy")].output["resumedFrom"] for i in sorted(interrupted)]
    print(f"{INSTANCES} instances completed; {counts}; interrupted copies resumed from steps {resumed}")
    assert sum(1 for r in resumed if r > 0) >= 3  # (0 only for a copy stopped before its first step)
