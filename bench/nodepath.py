"""`python -m bench.nodepath`: the node path alone, in one process, without Celery.

Claims, runs and completes every node of a chain and of a fan-out against MySQL the way `run_node`
does (the same core calls, the executor, the metrics), handing each completion's dispatches straight
to the next claim instead of to the broker. Prints wall and CPU time per node and the SQL round trips
per node (statements and commits), so a change to the node path can be measured without the noise
of a broker and a pool. Uses its own database (`BENCH_MYSQL_URL` + `_nodepath`, dropped at the end)
and the metrics store of the bench's Redis database.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import time
import uuid
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from bench import ours
from bench.cluster import drop_database, recreate_database
from bench.config import BenchConfig, database_url
from orchestrator.database_urls import MYSQL_DRIVERS

WORKER = "nodepath"


def _run(engine: Any, definition: dict[str, Any]) -> tuple[float, float, int]:
    from orchestrator import admission, catalog, executors, scheduling
    from orchestrator.instances import InstanceRequest, create_instance
    from workers.runtime import run_attempt

    def sent(dispatches: Any) -> list[Any]:  # what `follow_up` sends: a limited node once admitted
        limited = [d for d in dispatches if d.limits]
        return [d for d in dispatches if not d.limits] + (admission.admit(engine, limited) if limited else [])

    executors.load_modules(())
    catalog.save_definition(engine, definition)
    created = create_instance(engine, InstanceRequest(workflow=definition["name"]))
    wall, cpu = time.perf_counter(), time.process_time()
    pending = collections.deque(sent(scheduling.start(engine, created.instance_id).dispatches))
    nodes = 0
    while pending:
        d = pending.popleft()
        held = scheduling.claim(engine, d.instance_id, d.node_id, d.attempt, WORKER, d.facts())
        assert held is not None, f"lost the claim of {d.node_id}"
        pending.extend(sent(run_attempt(engine, held, 30.0).dispatches))
        if d.limits:  # as `run_node` does after a limited node's attempt: the next waiting ones
            pending.extend(admission.release(engine, d.limits))
        nodes += 1
    return time.perf_counter() - wall, time.process_time() - cpu, nodes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nodepath", description=__doc__)
    parser.add_argument("--chain", type=int, default=200)
    parser.add_argument("--fan", type=int, default=200)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--driver", choices=MYSQL_DRIVERS, help="the MySQL driver (default: the URL's own)")
    args = parser.parse_args(argv)
    defaults = BenchConfig.from_env_defaults()
    try:
        chosen = make_url(database_url(defaults["mysql_url"], args.driver))
    except ValueError as exc:
        parser.error(str(exc))
    url = chosen.set(database=f"{chosen.database}_nodepath").render_as_string(hide_password=False)
    os.environ.update(ORCH_DATABASE_URL=url, ORCH_BROKER_URL=defaults["redis_url"], ORCH_WORKER_ID=WORKER)
    recreate_database(url)
    try:
        from orchestrator.db import make_engine

        engine = make_engine(url)
        print(f"driver {engine.dialect.driver} ({engine.dialect.dialect_description})")
        counts = collections.Counter[str]()
        # on the class: the claim runs on the engine's autocommitting sibling, which counts too
        event.listen(
            Engine,
            "before_cursor_execute",
            lambda conn, *_: counts.update(["statements" if conn.engine is engine else "autocommitted"]),
        )
        event.listen(engine, "commit", lambda *_: counts.update(["commits"]))
        chain = ours.chain_definition(args.chain)
        # every node under a concurrency limit it never reaches: the cost of the accounting alone
        limited = {**chain, "name": "bench-limited-chain"}
        limited["nodes"] = [{**node, "concurrency": 1000} for node in chain["nodes"]]
        for label, definition in (
            ("chain", chain),
            ("chain under a generous limit", limited),
            ("fan", ours.fan_definition(args.fan)),
        ):
            _run(engine, {**definition, "name": f"warm-{uuid.uuid4().hex[:6]}"})
            walls, cpus = [], []
            counts.clear()
            for _ in range(args.repetitions):
                wall, cpu, nodes = _run(engine, definition | {"version": f"1.0.{len(walls)}"})
                walls.append(wall / nodes * 1000)
                cpus.append(cpu / nodes * 1000)
            per_node = args.repetitions * nodes
            statements = (counts["statements"] + counts["autocommitted"]) / per_node
            print(
                f"{label} {nodes} nodes: wall {statistics.median(walls):.3f} ms/node"
                f" (min {min(walls):.3f}), cpu {statistics.median(cpus):.3f} ms/node"
                f" ({statistics.median(cpus) / statements * 1000:.0f} us per statement),"
                f" {counts['statements'] / per_node:.1f} statements in"
                f" {counts['commits'] / per_node:.1f} transactions and"
                f" {counts['autocommitted'] / per_node:.1f} autocommitted statements per node"
                " (creating included)"
            )
        engine.dispose()
    finally:
        drop_database(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
