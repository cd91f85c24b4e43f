"""Recovery: SIGKILL the worker running a node, time until the node runs again on another worker.

Two workers and beat run with short timings (heartbeat 0.5 s, timeout 3 s, sweep every 1 s); the
limit is heartbeat timeout + sweep interval + 1 s. Every instance must still complete (nodes lost:
0) and every node's completion be committed once (results committed twice: 0).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from sqlalchemy import text

from bench.cluster import FAST
from bench.ours import epoch
from bench.processes import wait_for
from bench.scenarios import RECOVERY_DEFINITION, Context
from bench.stats import Row, Target

WORKERS = ("fast1", "fast2")


def _slow_node(ctx: Context, instance_id: str) -> Any:
    assert ctx.cluster.engine is not None
    with ctx.cluster.engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT status, attempt, worker_id, started_at FROM node_executions "
                "WHERE instance_id = :id AND node_id = 'slow'"
            ),
            {"id": instance_id},
        ).one()


def _running(ctx: Context, instance_id: str) -> Any:
    row = _slow_node(ctx, instance_id)
    return row if row.status == "running" else None


def _ran_again(ctx: Context, instance_id: str, attempt: int) -> Any:
    row = _slow_node(ctx, instance_id)
    return row if row.attempt > attempt and row.status in ("running", "completed") else None


def recovery(ctx: Context) -> list[Row]:
    cluster = ctx.cluster
    for name in list(cluster.ours):
        cluster.stop_ours(name)  # the throughput worker uses production timings: out of the way
    for name in WORKERS:
        cluster.start_ours(name, fast=True)
    cluster.start_beat(FAST)
    ctx.orchestrator.define(RECOVERY_DEFINITION)
    limit = float(FAST["ORCH_HEARTBEAT_TIMEOUT"]) + float(FAST["ORCH_RECOVERY_INTERVAL"]) + 1
    name = "recovery (SIGKILL mid-node, heartbeat 0.5 s / timeout 3 s / sweep 1 s)"
    took = Row(
        name, "SIGKILL -> node running again", "s", target=Target("value", "<=", limit, f"<= {limit:g} s")
    )
    lost = Row(name, "nodes lost", "", target=Target("value", "<=", 0, "0"))
    twice = Row(name, "results committed twice", "", target=Target("value", "<=", 0, "0"))
    for rep in range(ctx.sizes.recoveries):
        instance_id, _ = ctx.orchestrator.create("bench-recovery")
        row = wait_for(partial(_running, ctx, instance_id), 60, "the slow node to run", interval=0.02)
        time.sleep(0.7)  # mid-node: it has beaten and checkpointed a few times
        victim = str(row.worker_id)
        cluster.ours[victim].kill()
        killed_at = time.time()
        del cluster.ours[victim]
        again = wait_for(
            partial(_ran_again, ctx, instance_id, row.attempt), 60, "the node to run again", interval=0.02
        )
        took.ours.append(epoch(again.started_at) - killed_at)
        try:
            ctx.orchestrator.wait(instance_id, 60)
            lost.ours.append(0)
        except (RuntimeError, AssertionError):  # wait_for's deadline
            lost.ours.append(1)
        counts = ctx.orchestrator.completions_per_node([instance_id])
        twice.ours.append(sum(1 for n in counts.values() if n > 1))
        ctx.say(f"  recovery #{rep + 1}: {took.ours[-1]:.2f} s (killed {victim}, now {again.worker_id})")
        cluster.start_ours(victim, fast=True)  # back to two workers for the next round
    return [took, lost, twice]
