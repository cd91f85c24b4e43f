"""A long queue is not taken for lost messages, and a lost message is still found.

(a) A fan-out of 1,000 leaves queued on one worker whose slots the test holds at a gate until the
leaves have waited longer than the heartbeat timeout (2 s) and sweeps (every second) have run past
that: the sweeps resend (almost) nothing, before the gate opens or while the queue drains, and it
drains about as fast as the same fan-out without beat. Before, every sweep resent up to 500 queued
nodes, each copy was delivered and dropped at its claim, and the queue grew instead of draining.
The gate, not the machine's slowness, makes the leaves wait past the window: on a fast machine the
whole fan-out drains in less than the window.

(b) A node whose message waits on a queue nobody consumes is left alone by sweep after sweep; once
the test deletes the queue's Redis lists, the next sweep resends it, and it completes once.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from orchestrator.models import NodeRow
from tests.acceptance.helpers import define, effects, start
from tests.chaos import helpers
from tests.support import gates
from tests.support.gates import open_gate
from tests.support.services import wait_for
from workers import broker_probe
from workers.delivery import DELIVERY_SETTINGS

assert gates.EXECUTOR  # registered in the test process too: the API checks executors

# Run three times (without beat, with, without again). The 5,000-node case is the benchmark's
# (`--only backlog`).
WIDTH = 1000
TIMEOUT = "2"  # heartbeat timeout, hence the window after which a message is presumed lost
# task events off, as the benchmark runs: the drain is what is compared, not Flower's feed
BACKLOG = {"ORCH_HEARTBEAT_TIMEOUT": TIMEOUT, "ORCH_RECOVERY_INTERVAL": "1", "ORCH_TASK_EVENTS": "0"}
SLOTS = 2  # the draining worker's concurrency, each slot held by one gated node while the leaves wait
SLOWER_AT_MOST = 2.0  # with beat vs the slower run without: generous, so a busy machine cannot fail it
RESENDS_AT_MOST = 5
SWEEP_REPORT = re.compile(r"recovery: (\d+) handed back, (\d+) resent")
SWEEP_DONE = re.compile(r"Task orchestrator\.recover\[[^\]]+\] succeeded")


def _fan(width: int) -> dict[str, Any]:
    """`source` runs on the control worker's queue `front`; the leaves and the join on `default`."""
    leaves = [f"leaf-{i}" for i in range(width)]
    return {
        "name": f"backlog-fan-{width}",
        "version": "1.0.0",
        "nodes": [
            {"id": "source", "type": "task", "executor": "noop", "queue": "front"},
            *({"id": leaf, "type": "task", "executor": "noop", "dependsOn": ["source"]} for leaf in leaves),
            {"id": "join", "type": "task", "executor": "noop", "dependsOn": leaves},
        ],
    }


def _hold(gate: Path) -> dict[str, Any]:
    """A node per slot of the draining worker, each held until the test opens `gate`."""
    return {
        "name": "backlog-hold",
        "version": "1.0.0",
        "nodes": [
            {
                "id": f"hold-{slot}",
                "type": "task",
                "executor": gates.EXECUTOR,
                "queue": "default",  # the leaves' queue, not the gate executor's own
                "config": {"gate": str(gate)},
            }
            for slot in range(SLOTS)
        ],
    }


def _leaves(db: Engine, instance_id: str) -> list[Any]:
    rows = helpers.node_rows(db, [instance_id])
    return [row for (_, node), row in rows.items() if node.startswith("leaf-")]


def _drain(db: Engine, live_api: Any, instance_id: str) -> tuple[float, float, int]:
    """Wait for one fan-out to complete: seconds from its first leaf's start to its last leaf's end,
    the longest wait of a leaf on its queue (s), and the copies the sweep recorded."""
    live_api.wait_status(instance_id, timeout=300)
    assert live_api.get(f"/api/v1/instances/{instance_id}/status").json()["status"] == "completed"
    rows = helpers.node_rows(db, [instance_id])
    leaves = _leaves(db, instance_id)
    drained = max(row.finished_at for row in leaves) - min(row.started_at for row in leaves)
    longest_wait = max(row.started_at - row.queued_at for row in leaves)
    counts = helpers.assert_each_node_committed_once(db, [instance_id], effect_kind=None)
    assert counts.nodes == len(leaves) + 2
    return drained.total_seconds(), longest_wait.total_seconds(), sum(row.resends for row in rows.values())


def _resent_by_sweeps(text: str) -> int:
    return sum(int(resent) for _, resent in SWEEP_REPORT.findall(text))


def test_a_long_queue_is_not_resent_and_drains_as_fast_with_beat(db, live_api, processes, tmp_path):
    """w0 runs `schedule`, the sweeps and each fan-out's `source`; w1 drains the leaves."""
    control = processes.worker("w0", concurrency=1, queues=["orchestrator", "front"], **BACKLOG)
    modules = {"ORCH_EXECUTOR_MODULES": gates.MODULES}
    processes.worker("w1", concurrency=SLOTS, queues=["default"], **modules, **BACKLOG)
    workflow = f"backlog-fan-{WIDTH}"
    gate = tmp_path / "gate"
    for body in (_fan(WIDTH), _fan(10), _hold(gate)):
        define(live_api, body)
    live_api.wait_status(start(live_api, "backlog-fan-10"))  # warm: imports, pools, the definition cache

    before_beat, _, _ = _drain(db, live_api, start(live_api, workflow))
    beat = processes.beat("beat", **BACKLOG)
    wait_for(lambda: SWEEP_DONE.search(control.log_text()), 60, "a first sweep")
    sweeps_before = len(SWEEP_DONE.findall(control.log_text()))

    hold = start(live_api, "backlog-hold")
    wait_for(lambda: len(effects(db, hold, "entered")) == SLOTS, 60, "every slot of w1 to be held")
    instance_id = start(live_api, workflow)
    queued = wait_for(
        lambda: (leaves := _leaves(db, instance_id)) and all(row.queued_at for row in leaves) and leaves,
        60,
        "every leaf to be queued",
    )
    past_window = max(row.queued_at for row in queued) + timedelta(seconds=float(TIMEOUT) + 1)

    def sweeps_past_window() -> int:
        return len(SWEEP_DONE.findall(control.log_text())) if helpers.now() > past_window else 0

    seen = wait_for(sweeps_past_window, 30, "the leaves to wait longer than the window")
    wait_for(lambda: sweeps_past_window() >= seen + 2, 30, "two sweeps while the leaves wait past the window")
    resent_while_held = _resent_by_sweeps(control.log_text())
    open_gate(gate)
    swept, longest_wait, copies = _drain(db, live_api, instance_id)
    log = control.log_text()
    sweeps = len(SWEEP_DONE.findall(log)) - sweeps_before
    resent = _resent_by_sweeps(log)
    beat.stop()
    assert live_api.wait_status(hold)["status"] == "completed"
    after_beat, _, _ = _drain(db, live_api, start(live_api, workflow))
    alone = max(before_beat, after_beat)  # the machine's speed may change under the test: bracket it
    print(
        f"\nfan-out of {WIDTH} on one worker: {before_beat:.1f} s and {after_beat:.1f} s without beat, "
        f"{swept:.1f} s with beat ({WIDTH / alone:.0f} and {WIDTH / swept:.0f} nodes/s); {sweeps} sweeps "
        f"meanwhile, the longest wait on the queue {longest_wait:.1f} s; resent by the sweeps: "
        f"{resent_while_held} while held, {resent} in all; copies recorded: {copies}"
    )
    assert longest_wait > float(TIMEOUT) + 1, longest_wait  # what the gate arranged
    assert resent <= RESENDS_AT_MOST and copies <= RESENDS_AT_MOST, (resent_while_held, resent, copies)
    assert swept <= SLOWER_AT_MOST * alone, (swept, alone)


def _lists(queue: str) -> list[str]:
    options = DELIVERY_SETTINGS["broker_transport_options"]
    return [queue] + [f"{queue}{options['sep']}{step}" for step in options["priority_steps"][1:]]


def _node(db: Engine, instance_id: str) -> Any:
    with db.connect() as conn:
        return conn.execute(select(NodeRow.__table__).where(NodeRow.instance_id == instance_id)).one()


def test_a_message_deleted_from_the_broker_is_resent_within_the_recovery_bound(
    db, live_api, processes, redis_client
):
    """w1 runs the schedule and the sweeps but does not consume `later`, the node's queue."""
    control = processes.worker("w1", queues=["orchestrator"])
    processes.beat("beat")
    define(
        live_api,
        {
            "name": "lost-message",
            "version": "1.0.0",
            "nodes": [{"id": "only", "type": "task", "executor": "noop", "queue": "later"}],
        },
    )
    instance_id = start(live_api, "lost-message")
    window = float(helpers.FAST["ORCH_HEARTBEAT_TIMEOUT"])
    wait_for(lambda: broker_probe.count_waiting(["later"])["later"] == 1, 30, "the node's message on `later`")
    queued_at = _node(db, instance_id).queued_at

    def sweeps_after(moment: datetime) -> int:
        return len(SWEEP_DONE.findall(control.log_text())) if helpers.now() > moment else 0

    # waiting past the window, sweep after sweep: a message that waits is not lost
    past_window = queued_at + timedelta(seconds=window)
    seen = wait_for(lambda: sweeps_after(past_window), 30, "the node to wait longer than the window")
    wait_for(lambda: sweeps_after(past_window) >= seen + 2, 30, "two more sweeps")
    assert _node(db, instance_id).resends == 0
    assert broker_probe.count_waiting(["later"]) == {"later": 1}

    deleted_at = helpers.now()
    assert redis_client.delete(*_lists("later")) == 1
    resent = wait_for(lambda: _node(db, instance_id).resent_at, 30, "the sweep to resend the node")
    took = (resent - deleted_at).total_seconds()
    helpers.record_recovery("message deleted from the broker -> resent", took)
    print(f"\nmessage deleted -> resent by the sweep in {took:.2f} s")
    assert took <= helpers.RECOVERY_BOUND_S, took
    # the sweep commits `resent_at` first and sends the copy after its lock is let go: wait for it
    wait_for(lambda: broker_probe.count_waiting(["later"])["later"] > 0, 10, "the resent copy on `later`")
    assert broker_probe.count_waiting(["later"]) == {"later": 1}  # the copy, and nothing more

    processes.worker("w2", queues=["later"])
    live_api.wait_status(instance_id, timeout=60)
    node = _node(db, instance_id)
    assert (node.status, node.attempt, node.worker_id, node.resends) == ("completed", 1, "w2", 1)
    counts = helpers.assert_each_node_committed_once(db, [instance_id], effect_kind=None)
    assert counts.completed_lines == 1
    lost = Counter(line.node_id for line in helpers.log_rows(db, [instance_id], "%presumed lost%"))
    assert lost == Counter({"only": 1})
