"""The scenarios. Each runs ours and its raw Celery twin alternately, `repetitions` times, and returns
result rows; the ratio in a row is ours / raw of the medians."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from bench import ours, raw
from bench.cluster import Cluster
from bench.config import Sizes
from bench.cost import CostMeter, CostRows
from bench.stats import Row, Target, percentile

DIAMOND_NODES = 4


@dataclass
class Context:
    cluster: Cluster
    orchestrator: ours.Orchestrator
    redis: redis.Redis
    sizes: Sizes
    clients: int
    say: Callable[[str], None]
    cost: CostMeter


def sequential(ctx: Context) -> list[Row]:
    n = ctx.sizes.chain
    ctx.orchestrator.define(ours.chain_definition(n))
    name = f"sequential ({n}-node chain)"
    # the cost-per-node issue's targets: latency no worse than before it (1.76x), worker CPU <= 2x
    p50 = Row(name, "per-node latency p50", "ms", target=Target("ratio", "<=", 1.76, "<= 1.76x raw"))
    p99 = Row(name, "per-node latency p99", "ms")
    mean = Row(name, "wall time / nodes", "ms")
    cost = CostRows(name, Target("ratio", "<=", 2.0, "<= 2x raw"))
    for rep in range(ctx.sizes.repetitions):
        with ctx.cost.measure() as ours_cost:
            run = ctx.orchestrator.run(f"bench-chain-{n}")
        p50.ours.append(percentile(run.hops, 50) * 1000)
        p99.ours.append(percentile(run.hops, 99) * 1000)
        mean.ours.append(run.total_s / n * 1000)
        with ctx.cost.measure() as raw_cost:
            baseline = raw.run_chain(ctx.redis, n)
        cost.add(ours_cost, n, raw_cost, n)
        raw_p50, raw_p99 = raw.hop_percentiles(baseline)
        p50.raw.append(raw_p50)
        p99.raw.append(raw_p99)
        mean.raw.append(baseline.total_s / n * 1000)
        ctx.say(f"  {name} #{rep + 1}: p50 {p50.ours[-1]:.2f} ms vs raw {raw_p50:.2f} ms")
    return [p50, p99, mean, *cost.rows()]


def fan(ctx: Context) -> list[Row]:
    width = ctx.sizes.fan
    ctx.orchestrator.define(ours.fan_definition(width))
    target = Target("ratio", ">=", 0.7, ">= 0.7x raw chord")
    return _beside_a_chord(ctx, f"fan-out/fan-in (1 -> {width} -> 1)", f"bench-fan-{width}", target)


def mapped(ctx: Context) -> list[Row]:
    """The fan-out's shape as a map node (1 -> map of N items -> 1) beside the same raw chord: the
    items count as the leaves do (the map node itself is the extra work of a map)."""
    width = ctx.sizes.fan
    ctx.orchestrator.define(ours.map_definition(width))
    return _beside_a_chord(ctx, f"map (1 -> map of {width} -> 1)", f"bench-map-{width}", None)


def _beside_a_chord(ctx: Context, name: str, workflow: str, target: Target | None) -> list[Row]:
    """Ours (1 -> `ctx.sizes.fan` -> 1, as `workflow`) and raw Celery's chord of as many leaves."""
    width = ctx.sizes.fan
    nodes = width + 2
    rate = Row(name, "throughput", "nodes/s", target=target)
    wall = Row(name, "wall time", "s")
    cost = CostRows(name)
    for rep in range(ctx.sizes.repetitions):
        with ctx.cost.measure() as ours_cost:
            run = ctx.orchestrator.run(workflow)
        rate.ours.append(nodes / run.total_s)
        wall.ours.append(run.total_s)
        with ctx.cost.measure() as raw_cost:
            baseline = raw.run_chord(ctx.redis, width)
        cost.add(ours_cost, nodes, raw_cost, nodes)
        rate.raw.append(nodes / baseline.total_s)
        wall.raw.append(baseline.total_s)
        ctx.say(f"  {name} #{rep + 1}: {rate.ours[-1]:.0f} nodes/s vs raw {rate.raw[-1]:.0f}")
    return [rate, wall, *cost.rows()]


def many(ctx: Context) -> list[Row]:
    count = ctx.sizes.instances
    ctx.orchestrator.define(ours.DIAMOND)
    name = f"many instances ({count} x 4-node diamond over HTTP, {ctx.clients} clients)"
    done = Row(name, "instances completed", "", target=Target("value", ">=", count, f"all {count}"))
    inst = Row(name, "instances/s", "1/s")
    nodes = Row(name, "nodes/s (raw: burst of no-op tasks/s)", "1/s")
    nodes.target = Target("ratio", ">=", 0.45, ">= 0.45x raw burst")
    p50 = Row(name, "API create latency p50", "ms")
    p99 = Row(name, "API create latency p99", "ms", target=Target("value", "<=", 50, "< 50 ms"))
    cost = CostRows(name, Target("ratio", "<=", 2.0, "<= 2x raw"))
    for rep in range(ctx.sizes.repetitions):
        with ctx.cost.measure() as ours_cost:
            run = ctx.orchestrator.many("bench-diamond", count, ctx.clients, DIAMOND_NODES)
        done.ours.append(run.completed)
        inst.ours.append(count / run.total_s)
        nodes.ours.append(run.nodes / run.total_s)
        p50.ours.append(percentile(run.create_latencies, 50) * 1000)
        p99.ours.append(percentile(run.create_latencies, 99) * 1000)
        with ctx.cost.measure() as raw_cost:
            baseline = raw.run_burst(ctx.redis, run.nodes)
        cost.add(ours_cost, run.nodes, raw_cost, run.nodes)
        nodes.raw.append(run.nodes / baseline.total_s)
        ctx.say(
            f"  many #{rep + 1}: {nodes.ours[-1]:.0f} nodes/s vs raw {nodes.raw[-1]:.0f}, "
            f"create p99 {p99.ours[-1]:.1f} ms"
        )
    return [done, inst, nodes, p50, p99, *cost.rows()]


def _per_node(ctx: Context, workflow: str, nodes: int) -> float:
    return ctx.orchestrator.run(workflow).total_s / nodes * 1000


def scale(ctx: Context) -> list[Row]:
    """Per-node cost (wall time / nodes) across sizes; ratios are against the 100 case of each shape."""
    rows: list[Row] = []
    shapes = [
        ("fan-out", ctx.sizes.scale_fans, ours.fan_definition, "bench-fan-{}", 2),
        ("chain", ctx.sizes.scale_chains, ours.chain_definition, "bench-chain-{}", 0),
    ]
    for shape, sizes, definition, workflow, extra in shapes:
        per_size: dict[int, list[float]] = {}
        for size in sizes:
            ctx.orchestrator.define(definition(size))
            per_size[size] = [
                _per_node(ctx, workflow.format(size), size + extra) for _ in range(ctx.sizes.repetitions)
            ]
            ctx.say(f"  scale {shape} {size}: {sorted(per_size[size])} ms/node")
        reference = per_size.get(100, [])
        for size in sizes:
            row = Row("scale", f"{shape} {size}: wall time / nodes", "ms", ours=per_size[size])
            if size > 100 and reference:
                row.raw = reference
                row.note = "baseline: the 100 case"
                if size == max(sizes):
                    row.target = Target("ratio", "<=", 1.3, "<= 1.3x the 100 case")
            rows.append(row)
    return rows


RECOVERY_DEFINITION = {
    "name": "bench-recovery",
    "version": "1.0.0",
    "nodes": [
        {"id": "before", "type": "task", "executor": "noop"},
        {
            "id": "slow",
            "type": "task",
            "executor": "sleep",
            "dependsOn": ["before"],
            "config": {"seconds": 3, "checkpoint": True},
        },
        {"id": "after", "type": "task", "executor": "noop", "dependsOn": ["slow"]},
    ],
}


def pause(seconds: float) -> None:
    time.sleep(seconds)
