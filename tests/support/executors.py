"""Executors for tests. Their side effects go to a table of their own (`test_effects`) in the same
database, so a test can count what really ran, independently of the orchestrator's own rows.

A node that must still be running when a test kills, freezes, pauses or cancels something waits at a
gate the test opens (`open_gate`), never for a number of steps or seconds that a slower machine
would get through first. A gate is a key in the test Redis database (`ORCH_BROKER_URL`, flushed
before every test); an executor that reaches one records a `gate` effect, so the test can wait until
the node is held there.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import redis
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, create_engine, insert
from sqlalchemy.exc import DBAPIError

from orchestrator import Fatal, Retryable, executor
from orchestrator.context import ExecutionContext

metadata = MetaData()
effects = Table(
    "test_effects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("instance_id", String(36)),
    Column("node_id", String(128)),
    Column("attempt", Integer),
    Column("kind", String(32)),
    Column("data", Text),
)
_engines: dict[tuple[int, str], Any] = {}
_gate_clients: dict[tuple[int, str], redis.Redis] = {}

GATE_PREFIX = "tests:gate:"
GATE_POLL_S = 0.05


def _engine() -> Any:
    url = os.environ["ORCH_DATABASE_URL"]
    key = (os.getpid(), url)
    if key not in _engines:
        # pre-ping: a chaos test may KILL this process's idle MySQL connections between effects
        _engines[key] = create_engine(url, pool_size=2, pool_pre_ping=True)
        try:
            metadata.create_all(_engines[key])
        except DBAPIError:
            # two pool processes' first effects at once: the other one created it after our check
            metadata.create_all(_engines[key])
    return _engines[key]


def record(ctx: ExecutionContext, kind: str, data: str = "") -> None:
    with _engine().begin() as conn:
        conn.execute(
            insert(effects).values(
                instance_id=ctx.instance_id, node_id=ctx.node_id, attempt=ctx.attempt, kind=kind, data=data
            )
        )


def open_gate(client: redis.Redis, name: str) -> None:
    """Let every node waiting at gate `name` (now or later) go on. `client` is the test Redis."""
    client.set(GATE_PREFIX + name, "open")


def _gates() -> redis.Redis:
    # the test Redis, whatever broker the worker runs on (tests/conftest.py sets TESTS_REDIS_URL)
    url = os.environ.get("TESTS_REDIS_URL") or os.environ["ORCH_BROKER_URL"]
    key = (os.getpid(), url)  # a client per process: pool children must not share their parent's
    if key not in _gate_clients:
        _gate_clients[key] = redis.Redis.from_url(url)
    return _gate_clients[key]


def wait_at_gate(ctx: ExecutionContext, name: str, *, heed_stop: bool, stopped: str = "") -> None:
    """Record a `gate` effect, then block until the test opens gate `name`. With `heed_stop`, a
    pause, cancel, lost lease or shutdown ends the wait with `Retryable(stopped)` (by default
    "stopped at gate <name>"), as a well-behaved executor does; without it, only the gate ends the
    wait. The node's lease is renewed meanwhile by the worker's heartbeat thread."""
    record(ctx, "gate", name)
    while not _gates().exists(GATE_PREFIX + name):
        if heed_stop and ctx.should_stop:
            raise Retryable(stopped or f"stopped at gate {name}")
        time.sleep(GATE_POLL_S)


@executor("tests.gated")
def gated(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Waits at gate `gate` (heeding should_stop), then records one effect and returns."""
    gate = str(config["gate"])
    wait_at_gate(ctx, gate, heed_stop=True)
    record(ctx, "run", gate)
    return {"node": ctx.node_id, "attempt": ctx.attempt, "gate": gate}


@executor("tests.count")
def count(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Records one effect per call and returns its config (and which node it ran as)."""
    record(ctx, "run")
    return {"node": ctx.node_id, "attempt": ctx.attempt, **config}


@executor("tests.driver")
def driver(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Which MySQL driver the worker's own engine uses, and its connection's character set."""
    from sqlalchemy import text

    from workers.resources import engine

    with engine().connect() as conn:
        charset = conn.execute(text("SELECT @@character_set_connection")).scalar()
    return {"driver": engine().dialect.driver, "charset": charset, **config}


@executor("tests.flaky")
def flaky(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Fails its first `failures` attempts (retryable), then succeeds."""
    record(ctx, "run")
    if ctx.attempt <= int(config.get("failures", 0)):
        raise Retryable(f"planned failure {ctx.attempt}")
    return {"attempt": ctx.attempt}


@executor("tests.fatal")
def fatal(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    raise Fatal(str(config.get("message", "planned fatal failure")))


@executor("tests.steps")
def steps(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Works through `total` steps of `delay` seconds, checkpointing after each; records each step it
    really did. With `failAt`, the first attempt fails after that step (to test resuming). With
    `gate`, every attempt that reaches step `gateAt` (default 0) with its checkpoint saved waits there
    until the test opens the gate, heeding should_stop as between steps."""
    total = int(config.get("total", 10))
    delay = float(config.get("delay", 0.05))
    gate_at = int(config.get("gateAt", 0))
    start = int((ctx.last_checkpoint or {}).get("done", 0))
    for step in range(start, total):
        if ctx.should_stop:
            raise Retryable(f"stopped at step {step}")
        if config.get("gate") is not None and step == gate_at:
            wait_at_gate(ctx, str(config["gate"]), heed_stop=True, stopped=f"stopped at step {step}")
        time.sleep(delay)
        record(ctx, "step", str(step))
        ctx.checkpoint({"done": step + 1})
        if config.get("failAt") is not None and ctx.attempt == 1 and step + 1 == int(config["failAt"]):
            raise Retryable(f"planned failure after step {step + 1}")
    return {"done": total, "resumedFrom": start}


@executor("tests.stubborn")
def stubborn(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Waits at gate `gate` (or sleeps `seconds`) and never looks at `should_stop`: the worst case for
    a graceful shutdown."""
    record(ctx, "run")
    if config.get("gate") is not None:
        wait_at_gate(ctx, str(config["gate"]), heed_stop=False)
        return {"gate": config["gate"]}
    time.sleep(float(config.get("seconds", 10)))
    return {"slept": config.get("seconds", 10)}


@executor("tests.work")
def work(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Works for `seconds` (or a random time between `min` and `max`, or until the test opens gate
    `gate`) without looking at `should_stop`, then records one effect naming the worker. Its output
    says which attempt on which worker produced it, so a test can tell a replacement's result from a
    stale one."""
    if config.get("gate") is not None:
        wait_at_gate(ctx, str(config["gate"]), heed_stop=False)
    else:
        seconds = config.get("seconds")
        if seconds is None:
            seconds = random.uniform(float(config.get("min", 0.05)), float(config.get("max", 0.2)))
        time.sleep(float(seconds))
    worker = os.environ.get("ORCH_WORKER_ID", "")
    record(ctx, "run", worker)
    return {"node": ctx.node_id, "attempt": ctx.attempt, "worker": worker}


@executor("tests.limited", concurrency=2)
def limited(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """An executor held to 2 running at once cluster-wide: works `seconds` (or waits at gate `gate`,
    heeding should_stop) and records one effect naming the worker."""
    if config.get("gate") is not None:
        wait_at_gate(ctx, str(config["gate"]), heed_stop=True)
    else:
        time.sleep(float(config.get("seconds", 0.2)))
    worker = os.environ.get("ORCH_WORKER_ID", "")
    record(ctx, "run", worker)
    return {"node": ctx.node_id, "attempt": ctx.attempt, "worker": worker}


@executor("tests.rated", rate="10/s")
def rated(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """An executor held to 10 starts a second cluster-wide; records one effect."""
    record(ctx, "run")
    return {"node": ctx.node_id}


MAP_RUNS = "tests:map:runs:"  # + instance id: a Redis hash, item index -> runs of `tests.map_item`
MAP_FIXED_GATE = "map-fixed"


@executor("tests.map_item")
def map_item(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """A map's item: counts its run per `index` in Redis (outside the product's store), then fails
    for good when `fail` is true until the test opens gate `map-fixed`; returns its index and item."""
    _gates().hincrby(MAP_RUNS + ctx.instance_id, str(config["index"]), 1)
    if config.get("fail") and not _gates().exists(GATE_PREFIX + MAP_FIXED_GATE):
        raise Fatal(f"planned failure of item {config['index']}")
    return {"index": config["index"], "item": config.get("item")}


def map_runs(client: redis.Redis, instance_id: str) -> dict[int, int]:
    """How often `tests.map_item` ran per item index of an instance."""
    return {int(k): int(v) for k, v in client.hgetall(MAP_RUNS + instance_id).items()}
