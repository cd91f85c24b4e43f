"""Backlog: a fan-out whose queue takes many sweep windows to drain, with beat sweeping meanwhile.

One worker runs a 1 -> N -> 1 fan-out of no-op nodes (5,000 in a full run), alternately without beat
and with beat sweeping every second at a 2 s heartbeat timeout, so most leaves wait on the queue far
longer than the window after which a message is presumed lost. The sweep must tell that backlog from
lost messages: the fan-out drains about as fast with beat as without it, and the sweep resends
(almost) nothing. Before the sweep asked the broker, every sweep resent up to 500 waiting nodes and
the queue grew instead of draining (docs/recovery.md).
"""

from __future__ import annotations

from sqlalchemy import text

from bench import ours
from bench.cluster import BACKLOG
from bench.scenarios import Context
from bench.stats import Row, Target

WORKER = "backlog1"


def _copies(ctx: Context, instance_id: str) -> int:
    """Copies of the instance's node messages the sweep sent (recorded on each node row)."""
    assert ctx.cluster.engine is not None
    with ctx.cluster.engine.connect() as conn:
        query = text("SELECT COALESCE(SUM(resends), 0) FROM node_executions WHERE instance_id = :id")
        return int(conn.execute(query, {"id": instance_id}).scalar_one())


def backlog(ctx: Context) -> list[Row]:
    cluster = ctx.cluster
    width = ctx.sizes.backlog
    nodes = width + 2
    workflow = f"bench-fan-{width}"
    ctx.orchestrator.define(ours.fan_definition(width))
    throughput_workers = list(cluster.ours)
    for name in throughput_workers:
        cluster.stop_ours(name)  # one worker, whose sweeps presume a message lost after 2 s
    cluster.start_ours(WORKER, settings=BACKLOG)
    ctx.orchestrator.run("bench-chain-10")  # warm its pools and caches (defined by the warm-up)
    name = f"backlog (1 -> {width} -> 1 on one worker; beat: timeout 2 s, sweep every 1 s)"
    rate = Row(
        name,
        "throughput with beat",
        "nodes/s",
        target=Target("ratio", ">=", 0.67, ">= 0.67x without beat"),
        note="baseline: the same without beat",
    )
    copies = Row(name, "node messages resent by the sweep", "", target=Target("value", "<=", 5, "<= 5"))
    try:
        for rep in range(ctx.sizes.repetitions):
            cluster.stop_beat()
            rate.raw.append(nodes / ctx.orchestrator.run(workflow).total_s)
            cluster.start_beat(BACKLOG)
            run = ctx.orchestrator.run(workflow)
            rate.ours.append(nodes / run.total_s)
            copies.ours.append(_copies(ctx, run.instance_id))
            ctx.say(
                f"  backlog #{rep + 1}: {rate.ours[-1]:.0f} nodes/s with beat vs {rate.raw[-1]:.0f} without, "
                f"{copies.ours[-1]:.0f} resent"
            )
    finally:
        cluster.stop_ours(WORKER)
        for name in throughput_workers:
            cluster.start_ours(name)
        cluster.start_beat()  # back to production's settings
    return [rate, copies]
