"""Two beats by mistake: both send the recovery sweep, yet every node interrupted by a SIGKILL is
handed back exactly once (the sweep's lock, and under it a compare-and-set per node attempt)."""

from __future__ import annotations

from collections import Counter

from tests.acceptance.helpers import define, start_batch
from tests.chaos import helpers
from tests.support.executors import open_gate
from tests.support.services import wait_for

NODES = 3
TOTAL = 30
HELD_AT = 3  # each node checkpoints this many steps, then waits for the test to kill w1
LONG = {
    "name": "chaos-long",
    "version": "1.0.0",
    "nodes": [
        {
            "id": "long",
            "type": "task",
            "executor": "tests.steps",
            "config": {"total": TOTAL, "delay": 0.05, "gate": "w1-killed", "gateAt": HELD_AT},
        }
    ],
}


def test_with_two_beats_each_node_of_a_killed_worker_is_handed_back_exactly_once(
    db, live_api, processes, redis_client
):
    """w1 runs three long checkpointing nodes (held mid-way until w1 is dead); w2 runs the sweeps
    that two beats send every second; w3 stands by. w1 is SIGKILLed: each of its nodes is handed back
    once (one 'handed back' line, attempt 2), runs again on w3 within the recovery bound, resumes from
    its checkpoint and completes once."""
    w1 = processes.worker("w1", wait=False, concurrency=NODES)
    # w2 runs the sweeps only: it cannot take the nodes
    w2 = processes.worker("w2", wait=False, queues=["orchestrator", "default"])
    processes.wait_all_registered({"w1": w1, "w2": w2})
    beats = [processes.beat("beat1"), processes.beat("beat2")]
    define(live_api, LONG)
    instance_ids = start_batch(live_api, LONG["name"], NODES)

    def all_held_on_w1() -> bool:
        rows = helpers.node_rows(db, instance_ids).values()
        held = {e.instance_id for e in helpers.effect_rows(db, instance_ids, "gate")}
        return all(r.status == "running" and r.worker_id == "w1" for r in rows) and held == set(instance_ids)

    wait_for(all_held_on_w1, 60, "every node running on w1, held at its gate", interval=0.1)
    processes.worker("w3", concurrency=NODES)  # nothing is queued: it idles until the hand-backs

    killed_at = helpers.now()
    w1.kill()
    open_gate(redis_client, "w1-killed")  # only the attempts after the hand-backs go through
    helpers.wait_all_completed(db, instance_ids, timeout=60)

    counts = helpers.assert_each_node_committed_once(db, instance_ids, effect_kind=None)
    handed_back = Counter(
        (line.instance_id, line.node_id) for line in helpers.log_rows(db, instance_ids, "node handed back%")
    )
    assert handed_back == Counter({(i, "long"): 1 for i in instance_ids}), handed_back
    rows = helpers.node_rows(db, instance_ids)
    assert {(r.attempt, r.worker_id, r.handbacks) for r in rows.values()} == {(2, "w3", 1)}
    for instance_id in instance_ids:
        done = Counter(int(e.data) for e in helpers.effect_rows(db, [instance_id], "step"))
        # killed while held after its checkpoint: attempt 2 resumed there, no step lost or redone
        assert done == Counter(range(TOTAL)), done
        assert rows[(instance_id, "long")].output == {"done": TOTAL, "resumedFrom": HELD_AT}

    events = helpers.recovery_events(db, instance_ids, {"w1": [killed_at]})
    assert len(events) == NODES
    for event in events:
        helpers.record_recovery("two beats: SIGKILL -> handed back", event.handed_back_s)
        helpers.record_recovery("two beats: SIGKILL -> running again on w3", event.running_again_s)
    again = [e.running_again_s for e in events]
    sent = [b.log_text().count("Sending due task recovery-sweep") for b in beats]
    skipped = sum(p.log_text().count("the sweep lock is held") for p in processes.started)
    print(
        f"\nsweeps sent by beat1/beat2: {sent}, skipped under the lock: {skipped}; {counts}; "
        f"SIGKILL -> running again: {helpers.describe(again)}"
    )
    assert all(n >= 2 for n in sent), sent
    assert max(again) <= helpers.RECOVERY_BOUND_S, again
