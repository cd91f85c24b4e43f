"""A storm of SIGKILLs: workers die at random mid-run and come back, under the same id or a new one,
while 36 diamond workflows run. Execution is at least once, every node's commit exactly once."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from datetime import datetime

import pytest

from tests.acceptance.helpers import define, start_batch
from tests.chaos import helpers
from tests.support.services import Process

INSTANCES = 36  # 144 nodes: enough for several kills mid-run, on both brokers
WORK = {"min": 0.25, "max": 0.5}  # long enough that the run spans several kills
DIAMOND = {
    "name": "chaos-diamond",
    "version": "1.0.0",
    "nodes": [
        {"id": "a", "type": "task", "executor": "tests.work", "config": WORK},
        {"id": "b", "type": "task", "executor": "tests.work", "config": WORK, "dependsOn": ["a"]},
        {"id": "c", "type": "task", "executor": "tests.work", "config": WORK, "dependsOn": ["a"]},
        {"id": "d", "type": "task", "executor": "tests.work", "config": WORK, "dependsOn": ["b", "c"]},
    ],
}
CHAOS_FOR_S = 40.0  # kills stop once every instance has ended, or after this long
MIN_KILLS = 3  # kills while instances were still running


def _all_ended_before(deadline: float, db, instance_ids: list[str]) -> bool:
    """Poll until every instance has ended (True) or the monotonic `deadline` has passed (False)."""
    while not helpers.all_finished(db, instance_ids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.both_brokers
def test_random_sigkills_and_restarts_of_workers_commit_every_node_exactly_once(db, live_api, processes):
    """3 workers run 36 diamonds (a -> b, c -> d); every 2-3 s a random worker's whole process group
    is SIGKILLed and a worker is started again, alternately under the killed id (it takes back what
    the id held) and under a new id (only the sweep can recover the dead one's nodes). Every instance
    completes; each node has one completed row, one 'node completed' line and one effect of its
    committed attempt; effects of killed attempts are allowed and counted."""
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    print(f"\nseed {seed}")
    workers: dict[str, Process] = {name: processes.worker(name, wait=False) for name in ("w1", "w2", "w3")}
    for name, process in workers.items():
        processes.wait_registered(name, process)
    processes.beat()
    define(live_api, DIAMOND)
    instance_ids = start_batch(live_api, DIAMOND["name"], INSTANCES)

    kills: dict[str, list[datetime]] = defaultdict(list)
    restarts = {"same id": 0, "new id": 0}
    next_id = 4
    chaos_until = time.monotonic() + CHAOS_FOR_S
    number = 0
    began = time.monotonic()
    while time.monotonic() < chaos_until:
        # the scenario: a kill every 2-3 s, for as long as something is left to run
        if _all_ended_before(time.monotonic() + rng.uniform(2.0, 3.0), db, instance_ids):
            break
        victim = rng.choice(sorted(workers))
        kills[victim].append(helpers.now())
        workers.pop(victim).kill()
        if number % 2 == 0:
            name, restarts["same id"] = victim, restarts["same id"] + 1
        else:
            name, restarts["new id"] = f"w{next_id}", restarts["new id"] + 1
            next_id += 1
        workers[name] = processes.worker(name, wait=False)
        number += 1
    for name, process in workers.items():
        processes.wait_registered(name, process)

    helpers.wait_all_completed(db, instance_ids, timeout=120)
    took = time.monotonic() - began
    counts = helpers.assert_each_node_committed_once(db, instance_ids)
    events = helpers.recovery_events(db, instance_ids, kills)
    for event in events:
        helpers.record_recovery(f"kill storm: SIGKILL -> handed back ({event.reason})", event.handed_back_s)
        if event.running_again_s is not None:
            helpers.record_recovery("kill storm: SIGKILL -> running again", event.running_again_s)
    print(f"{INSTANCES} instances completed in {took:.1f}s; {number} kills ({restarts}); {counts}")
    by_reason: dict[str, list[float]] = defaultdict(list)
    for event in events:
        by_reason[event.reason].append(event.handed_back_s)
    for reason, values in sorted(by_reason.items()):
        print(f"SIGKILL -> handed back ({reason}): {helpers.describe(values)}")
    again = [e.running_again_s for e in events if e.running_again_s is not None]
    print(f"SIGKILL -> running again: {helpers.describe(again)}")
    assert number >= MIN_KILLS
    assert counts.nodes == 4 * INSTANCES
    # every hand-back by the sweep came within the lease timeout + one sweep + slack of its kill
    late = [e for e in events if "heartbeat" in e.reason and e.handed_back_s > helpers.RECOVERY_BOUND_S]
    assert not late, late
