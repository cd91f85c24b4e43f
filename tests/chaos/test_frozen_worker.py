"""A worker frozen (SIGSTOP) past the heartbeat timeout: the sweep hands its node to another worker,
and when the frozen one thaws (SIGCONT) its late result is fenced off; then it works normally again."""

from __future__ import annotations

import os
import signal
import sys
import time

from sqlalchemy import select

from orchestrator.models import WorkerRow
from tests.acceptance.helpers import define, effects, log_messages, nodes, start
from tests.chaos import helpers
from tests.support.executors import open_gate
from tests.support.services import Process, wait_for

# works until the test opens its gate, without looking at should_stop (a frozen or killed worker's
# node must still be running when the test freezes or kills it, however slow the machine)
SLOW = {
    "name": "chaos-slow",
    "version": "1.0.0",
    "nodes": [{"id": "slow", "type": "task", "executor": "tests.work", "config": {"gate": "slow"}}],
}
SWEEP_DONE = "Task orchestrator.recover["  # ... succeeded in ...: the worker's line for a finished sweep


def _held_on(db, instance_id: str, worker: str) -> bool:
    """The node runs on `worker` and waits at its gate there."""
    row = nodes(db, instance_id)["slow"]
    held = [e for e in effects(db, instance_id, "gate") if e.attempt == row.attempt]
    return row.status == "running" and row.worker_id == worker and bool(held)


def _sweeps_done(*processes: Process) -> int:
    """Sweeps that ran to the end in these workers (a skipped one returns {'skipped': 1})."""
    return sum(
        1
        for process in processes
        for line in process.log_text().splitlines()
        if SWEEP_DONE in line and "succeeded" in line and "handedBack" in line
    )


def _worker_status(db, worker_id: str) -> str | None:
    with db.connect() as conn:
        return conn.execute(select(WorkerRow.status).where(WorkerRow.id == worker_id)).scalar()


def test_a_frozen_workers_late_result_is_fenced_and_the_replacement_result_stands(
    db, live_api, processes, redis_client
):
    """w1 runs a node (held at its gate) and is frozen with SIGSTOP (its whole process group) while
    it runs. Past the heartbeat timeout the sweep hands the node back and w2 runs attempt 2. After
    SIGCONT and the gate's opening, w1's attempt 1 finishes and its result is dropped (a FENCED log
    line); the node's output and attempt are w2's, and the node completed exactly once."""
    # w1 takes nodes only: frozen in the middle of a sweep it would hold the sweep's lock, and the
    # recovery would wait for the lock to expire too (the last test's case, measured there)
    w1 = processes.worker("w1", wait=False, queues=["tests"])
    # control schedules and sweeps
    control = processes.worker("control", wait=False, queues=["orchestrator", "default"])
    processes.wait_all_registered({"w1": w1, "control": control})
    processes.beat()
    define(live_api, SLOW)
    instance_id = start(live_api, SLOW["name"])
    wait_for(lambda: _held_on(db, instance_id, "w1"), 30, "the node to run on w1")
    processes.worker("w2")  # registered only now: nothing else is queued, so it idles until the hand-back

    os.killpg(w1.pid, signal.SIGSTOP)
    frozen_at = helpers.now()
    frozen = time.monotonic()
    try:
        wait_for(
            lambda: (
                (row := nodes(db, instance_id)["slow"]).worker_id == "w2"
                and row.status in ("running", "completed")
            ),
            30,
            "the node to run again on w2",
        )
        recovered_in = time.monotonic() - frozen
    finally:
        os.killpg(w1.pid, signal.SIGCONT)
    open_gate(redis_client, "slow")  # both attempts finish now: w2's commits, w1's late one is fenced
    helpers.record_recovery("frozen worker: SIGSTOP -> running on another worker", recovered_in)
    print(f"\nSIGSTOP -> running again on w2: {recovered_in:.2f}s (bound {helpers.RECOVERY_BOUND_S:.1f}s)")
    assert recovered_in <= helpers.RECOVERY_BOUND_S

    assert live_api.wait_status(instance_id)["status"] == "completed"
    fenced_line = "result of attempt 1 dropped: the node is no longer held by it"
    wait_for(
        lambda: fenced_line in log_messages(db, instance_id, "slow"), 30, "w1's late result to be dropped"
    )
    row = nodes(db, instance_id)["slow"]
    assert (row.status, row.attempt, row.worker_id) == ("completed", 2, "w2")
    assert row.output == {"node": "slow", "attempt": 2, "worker": "w2"}
    messages = log_messages(db, instance_id, "slow")
    assert messages.count("node completed") == 1, messages
    fenced = helpers.log_rows(db, [instance_id], "result of attempt % dropped%")
    assert [(f.attempt, f.worker_id, f.details["code"]) for f in fenced] == [(1, "w1", "FENCED")]
    # both attempts really ran (at least once execution); only attempt 2's result was committed
    assert sorted((e.attempt, e.data) for e in effects(db, instance_id, "run")) == [(1, "w1"), (2, "w2")]
    assert fenced[0].created_at > frozen_at


def test_a_thawed_worker_rejoins_and_its_new_nodes_are_not_handed_back(db, live_api, processes, redis_client):
    """A worker frozen past the heartbeat timeout is marked `gone` by the sweep. Once thawed it is
    alive: its heartbeats make it `active` again, and the nodes it claims from then on run to
    completion on it (held there until two sweeps have finished) instead of being handed back by
    every sweep."""
    w1 = processes.worker("w1", wait=False)
    # w2 runs sweeps, cannot take the node
    w2 = processes.worker("w2", wait=False, queues=["orchestrator", "default"])
    processes.wait_all_registered({"w1": w1, "w2": w2})
    processes.beat()
    define(live_api, SLOW)
    os.killpg(w1.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: _worker_status(db, "w1") == "gone", 30, "the sweep to mark w1 gone")
    finally:
        os.killpg(w1.pid, signal.SIGCONT)
    wait_for(lambda: _worker_status(db, "w1") == "active", 10, "w1 to be active again after SIGCONT")

    instance_id = start(live_api, SLOW["name"])
    wait_for(lambda: _held_on(db, instance_id, "w1"), 30, "the node to run on w1")
    # either worker may run a sweep (w1 has a free slot and serves every queue)
    swept = _sweeps_done(w1, w2)
    wait_for(lambda: _sweeps_done(w1, w2) >= swept + 2, 30, "two sweeps while the node runs on w1")
    open_gate(redis_client, "slow")
    assert live_api.wait_status(instance_id, timeout=60)["status"] == "completed"
    row = nodes(db, instance_id)["slow"]
    assert (row.attempt, row.worker_id, row.handbacks) == (1, "w1", 0)


# the beat's sweep task itself, run in a process of its own and frozen in the middle of the sweep
FROZEN_SWEEP = """
import os, signal
from orchestrator import recovery
from workers import beat

def sweep_and_freeze(*args, **kwargs):
    print("sweeping under the lock; freezing", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)

recovery.sweep = sweep_and_freeze
# the workers' own sweeps take the lock every second; try until this one holds it
while beat.recover().get("skipped"):
    pass
"""


def test_a_sweep_frozen_while_holding_its_lock_does_not_stop_recovery(db, live_api, processes, redis_client):
    """A recovery sweep freezes (SIGSTOP) in the middle, holding the sweep's lock with its MySQL
    connection open. Every other sweep finds the lock taken, yet only until the lock expires (a
    heartbeat timeout of silence): a worker SIGKILLed meanwhile (its node held at a gate until then)
    is still recovered in time."""
    w1 = processes.worker("w1", wait=False)
    # w2 runs the sweeps, cannot take the node
    w2 = processes.worker("w2", wait=False, queues=["orchestrator", "default"])
    processes.wait_all_registered({"w1": w1, "w2": w2})
    processes.beat()
    define(live_api, SLOW)
    instance_id = start(live_api, SLOW["name"])
    wait_for(lambda: _held_on(db, instance_id, "w1"), 30, "the node to run on w1")
    processes.worker("w3")  # idles until the hand-back

    holder = Process(
        "lock-holder",
        [sys.executable, "-c", FROZEN_SWEEP],
        processes.env,
        processes.tmp_path / "lock-holder.log",
    ).start()
    try:
        wait_for(lambda: "freezing" in holder.log_text(), 30, "the lock holder to freeze")
        assert holder.alive()
        w1.kill()
        killed = time.monotonic()
        open_gate(redis_client, "slow")  # w1's attempt is dead: the next one may finish
        wait_for(
            lambda: (
                (row := nodes(db, instance_id)["slow"]).worker_id == "w3"
                and row.status in ("running", "completed")
            ),
            30,
            "the node to run again on w3",
        )
        recovered_in = time.monotonic() - killed
        assert holder.alive()  # still frozen, its connection closed by the server: the lock expired
    finally:
        holder.kill()
    helpers.record_recovery("frozen lock holder: SIGKILL -> running again on another worker", recovered_in)
    print(f"\nlock holder frozen; SIGKILL -> running again on w3: {recovered_in:.2f}s")
    assert recovered_in <= helpers.RECOVERY_BOUND_S
    assert live_api.wait_status(instance_id)["status"] == "completed"
