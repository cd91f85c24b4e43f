"""`python -m bench [--quick] [--only NAME ...]`: start everything, run the scenarios, report, stop.

Every process started is stopped in a `finally` (and at exit, and on SIGTERM/SIGINT), the run's
database is dropped and only its own Redis database is flushed.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.config import AMQP_SCENARIOS, BROKERS, FULL, QUICK, ROOT, BenchConfig, database_url
from bench.stats import Row
from orchestrator.database_urls import MYSQL_DRIVERS

SCENARIOS = ("sequential", "fan", "map", "many", "scale", "backlog", "recovery")


def parse(argv: Sequence[str] | None) -> BenchConfig:
    defaults = BenchConfig.from_env_defaults()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repetition, small sizes")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=[], help="run only these scenarios")
    parser.add_argument("--mysql-url", default=defaults["mysql_url"], help="a database the run may drop")
    parser.add_argument(
        "--driver",
        choices=MYSQL_DRIVERS,
        help="the MySQL driver of the API, the workers and the bench (default: the URL's own, PyMySQL in "
        "the default URL); mysqldb needs the mysqlclient extra",
    )
    parser.add_argument(
        "--redis-url", default=defaults["redis_url"], help="a Redis database the run may flush"
    )
    parser.add_argument(
        "--broker",
        choices=(*BROKERS, "both"),
        default="both",
        help="redis: every scenario on Redis; amqp: the chain and the fan-out (or --only) on RabbitMQ; "
        "both (default): the Redis run, then the RabbitMQ one",
    )
    parser.add_argument("--amqp-url", default=defaults["amqp_url"], help="a RabbitMQ vhost the run may empty")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork children per worker (both sides)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients creating instances")
    parser.add_argument(
        "--out", type=Path, help="markdown file (default: docs/BENCHMARKS.md; quick: var/bench)"
    )
    parser.add_argument("--repetitions", type=int, help="repetitions per scenario (default: 5; quick: 1)")
    parser.add_argument("--keep-database", action="store_true", help="do not drop the database at the end")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    try:
        mysql_url = database_url(args.mysql_url, args.driver, "--mysql-url (BENCH_MYSQL_URL)")
    except ValueError as exc:
        parser.error(str(exc))
    out = args.out or (ROOT / "var" / "bench" / "BENCHMARKS-quick.md" if args.quick else None)
    sizes = QUICK if args.quick else FULL
    if args.repetitions:
        sizes = replace(sizes, repetitions=args.repetitions)
    config = BenchConfig(
        sizes,
        mysql_url=mysql_url,
        redis_url=args.redis_url,
        amqp_url=args.amqp_url,
        brokers=BROKERS if args.broker == "both" else (args.broker,),
        concurrency=args.concurrency,
        clients=args.clients,
        scenarios=tuple(args.only),
        quick=args.quick,
        keep_database=args.keep_database,
        strict=args.strict,
    )
    return replace(config, out=out) if out else config


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the `finally` that stops every process


def main(argv: Sequence[str] | None = None) -> int:
    config = parse(argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {line}", flush=True)

    rows, memory, env = _passes(config, _usable_brokers(config, say), say)
    from bench import report

    print(report.console(rows, memory))
    body = report.markdown(rows, env, memory)
    if config.out is not None:
        report.write(config.out, body)
        say(f"wrote {config.out}")
    dump = config.log_dir / "results.json"
    dump.write_text(json.dumps([row.__dict__ | {"target": str(row.target)} for row in rows], indent=1))
    say(f"done in {time.monotonic() - started:.0f}s")
    missed = [f"{row.scenario}: {row.metric}" for row in rows if row.met is False]
    if missed:
        say(f"{len(missed)} target(s) missed: " + "; ".join(missed))
    return 1 if missed and config.strict else 0


def _usable_brokers(config: BenchConfig, say: Callable[[str], None]) -> tuple[str, ...]:
    """The brokers to run on: RabbitMQ is checked before anything runs, so that a Redis pass is not
    thrown away at its end for a RabbitMQ that is not there (asked for alone, it fails the run)."""
    if "amqp" not in config.brokers:
        return config.brokers
    from bench.cluster import clear_vhost

    try:
        clear_vhost(config.amqp_url)
    except Exception as exc:
        if config.brokers == ("amqp",):
            raise
        say(f"RabbitMQ at {config.amqp_url} is not usable ({exc!r}): Redis only this time")
        return tuple(b for b in config.brokers if b != "amqp")
    return config.brokers


def _passes(
    config: BenchConfig, brokers: tuple[str, ...], say: Callable[[str], None]
) -> tuple[list[Row], dict, list]:
    """Each broker's pass in turn; RabbitMQ's rows and memory peaks are marked as such."""
    rows: list[Row] = []
    memory: dict = {}
    env: list = []
    for broker in brokers:
        one = replace(config, broker=broker)
        if broker == "amqp":
            scenarios = config.scenarios or AMQP_SCENARIOS
            if len(config.brokers) > 1:  # the Redis pass ran everything asked; RabbitMQ the chain and fan
                scenarios = tuple(name for name in scenarios if name in AMQP_SCENARIOS)
            if not scenarios:
                continue
            one = replace(one, scenarios=scenarios)
        say(f"on {'RabbitMQ' if broker == 'amqp' else 'Redis'}: {', '.join(one.scenarios or SCENARIOS)}")
        got, peaks, facts = _one_broker(one, say)
        env = env or facts
        if broker == "amqp":
            for row in got:
                row.scenario += " on RabbitMQ"
            peaks = {f"{name} (RabbitMQ)": value for name, value in peaks.items()}
            env = [*env, ("broker (rows marked on RabbitMQ)", _rabbit_version(one.amqp_url))]
        rows += got
        memory.update(peaks)
    return rows, memory, env


def _one_broker(config: BenchConfig, say: Callable[[str], None]) -> tuple[list[Row], dict, list]:
    """One pass: a cluster on `config.broker` (ours and raw side by side), its scenarios, then stop."""
    # imported here: the raw app reads its broker when imported
    from bench import raw_app

    raw_app.configure(config.redis_url, config.broker_url)
    from bench.cluster import Cluster, drop_database
    from bench.memory import PeakRss
    from bench.processes import Group

    group = Group(config.log_dir)
    cluster = Cluster(config, group)
    try:
        return _run(config, cluster, say, PeakRss)
    except BaseException:
        for process in group.started:
            say(f"log tail of {process.name} ({process.log_path}):\n{process.log_text()[-1500:]}")
        raise
    finally:
        group.stop_all()
        if cluster.engine is not None:
            cluster.engine.dispose()
        if not config.keep_database:
            drop_database(config.mysql_url)
        cluster.redis.flushdb()


def _rabbit_version(url: str) -> str:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=5) as conn:
            conn.connect()
            version = conn.connection.server_properties.get("version", "?")
    except Exception as exc:  # the report still gets written
        return f"RabbitMQ (version unknown: {type(exc).__name__})"
    text = version.decode() if isinstance(version, bytes) else str(version)
    return f"RabbitMQ {text}, classic queues with x-max-priority, publisher confirms (same host)"


def _run(
    config: BenchConfig, cluster: Any, say: Callable[[str], None], peak: Any
) -> tuple[list[Row], dict, list]:
    from bench import ours, report, scenarios
    from bench.backlog import backlog
    from bench.recovery import recovery

    say(
        f"database {config.mysql_url.rsplit('/', 1)[-1]} (driver {config.driver}), redis {config.redis_url},"
        f" broker {config.broker}"
    )
    engine = cluster.prepare()
    cluster.start_api()
    cluster.start_ours("ours1")
    cluster.start_beat()  # on, as in production: the sweep runs beside every throughput scenario
    cluster.start_raw("raw1")
    say("API, ours (with beat, production recovery settings) and raw workers are up")
    from bench.cost import CostMeter

    ctx = scenarios.Context(
        cluster,
        ours.Orchestrator(cluster.api_url, engine),
        cluster.redis,
        config.sizes,
        config.clients,
        say,
        CostMeter(engine, cluster.cost_targets),
    )
    _warm_up(ctx)
    chosen = config.scenarios or SCENARIOS
    run = {
        "sequential": scenarios.sequential,
        "fan": scenarios.fan,
        "map": scenarios.mapped,
        "many": scenarios.many,
        "scale": scenarios.scale,
        "backlog": backlog,
        "recovery": recovery,
    }
    rows: list[Row] = []
    with peak(cluster.memory_targets) as rss:
        for name in SCENARIOS:
            if name in chosen:
                say(f"scenario {name}")
                rows += run[name](ctx)
        rss.sample()
    redis_version = str(cluster.redis.info("server").get("redis_version"))
    return rows, rss.peaks, report.environment(engine, redis_version, config)


def _warm_up(ctx: Any) -> None:
    """Imports, pools and the definition cache warm on both sides before anything is measured."""
    from bench import ours, raw

    ctx.orchestrator.define(ours.chain_definition(10))
    for _ in range(2):
        ctx.orchestrator.run("bench-chain-10")
        raw.run_chain(ctx.redis, 10)


if __name__ == "__main__":
    sys.exit(main())
