"""`python -m bench.validation`: how long validating a very large definition takes, in one process.

A definition is validated by the API thread that receives it, so its cost is paid before any other
request on that thread. 10,000 nodes fit in the default 1 MiB body limit; this builds definitions of
that size (sent as compact JSON) in three shapes whose configs name other nodes' outputs (so the "is
it upstream?" check runs for every reference), and times `parse_definition` on each:

- chain: n0 <- n1 <- ... ; node i reads the output of node i // 2, upstream but not a direct dependency;
- fan: one root, n - 2 middle nodes after it, one join that depends on and reads every middle, and
  reads the root;
- cyclic: the chain with its first node also depending on its last, one cycle through every node,
  which must be reported (the definition is invalid) with the nodes involved.

Needs no database, broker or worker. Prints the best and median wall time of the repetitions per
shape, and the median CPU time of this process (the machine is shared: CPU time moves less).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from orchestrator import executors, templates
from orchestrator.definitions import parse_definition
from orchestrator.errors import ValidationError

TARGET_SECONDS = 2.0  # the bound for 10,000 nodes on the project's 2-core machine


def _node(node_id: str, deps: Sequence[str], config: dict[str, Any]) -> dict[str, Any]:
    return {"id": node_id, "executor": "noop", "dependsOn": list(deps), "config": config}


def _out(node_id: str) -> str:
    return f"${{nodes.{node_id}.output}}"


def chain(n: int) -> dict[str, Any]:
    nodes = [_node("n0", [], {"x": "${input.x}"})]
    # n{i // 2} is upstream but (from n2 on) not a direct dependency: the check must follow the chain
    nodes += [_node(f"n{i}", [f"n{i - 1}"], {"p": _out(f"n{i // 2}")}) for i in range(1, n)]
    return {"name": "bench-validate-chain", "version": "1.0.0", "nodes": nodes}


def fan(n: int) -> dict[str, Any]:
    middle = [f"m{i}" for i in range(n - 2)]
    nodes = [_node("root", [], {})]
    nodes += [_node(m, ["root"], {}) for m in middle]
    nodes.append(_node("join", middle, {"all": [_out(m) for m in middle], "root": _out("root")}))
    return {"name": "bench-validate-fan", "version": "1.0.0", "nodes": nodes}


def cyclic(n: int) -> dict[str, Any]:
    body = chain(n)
    body["name"] = "bench-validate-cyclic"
    body["nodes"][0]["dependsOn"] = [f"n{n - 1}"]
    return body


SHAPES: dict[str, Callable[[int], dict[str, Any]]] = {"chain": chain, "fan": fan, "cyclic": cyclic}


def _validate(body: dict[str, Any]) -> str:
    """`valid`, or the error codes reported (a cyclic definition must report CYCLE)."""
    try:
        parse_definition(body)
    except ValidationError as exc:
        codes = sorted({problem.code for problem in exc.problems})
        return "invalid: " + ", ".join(codes)
    return "valid"


def measure(shape: str, n: int, repetitions: int) -> dict[str, Any]:
    body = SHAPES[shape](n)
    # parse_definition caches parsed template strings: a fresh copy per run would not clear that,
    # so each repetition clears the cache itself, as a new definition with new strings would.
    times, cpu, outcome = [], [], ""
    for _ in range(repetitions):
        templates.parse.cache_clear()
        started, cpu_started = time.perf_counter(), time.process_time()
        outcome = _validate(body)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    nodes = body["nodes"]
    return {
        "shape": shape,
        "nodes": len(nodes),
        "edges": sum(len(node["dependsOn"]) for node in nodes),
        "refs": sum(json.dumps(node["config"]).count("${nodes.") for node in nodes),
        "kib": len(json.dumps(body, separators=(",", ":")).encode()) / 1024,
        "best": min(times),
        "median": statistics.median(times),
        "cpu": statistics.median(cpu),
        "outcome": outcome,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| shape | nodes | edges | template refs | body KiB | best s | median s | median CPU s | result |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += [
        f"| {r['shape']} | {r['nodes']:,} | {r['edges']:,} | {r['refs']:,} | {r['kib']:,.0f} "
        f"| {r['best']:.3f} | {r['median']:.3f} | {r['cpu']:.3f} | {r['outcome']} |"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.validation", description=__doc__)
    parser.add_argument("--nodes", type=int, default=10_000, help="nodes per definition")
    parser.add_argument("--repetitions", type=int, default=3, help="runs per shape")
    parser.add_argument("--only", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    over = f"exit 1 when a median is over {TARGET_SECONDS} s"
    parser.add_argument("--strict", action="store_true", help=over)
    args = parser.parse_args(argv)
    executors.load_modules(())  # the built-in `noop` the nodes name
    rows = []
    for shape in args.only:
        rows.append(measure(shape, args.nodes, args.repetitions))
        print(f"{shape}: median {rows[-1]['median']:.3f} s ({rows[-1]['outcome']})", flush=True)
    print(table(rows))
    slow = [r["shape"] for r in rows if r["median"] > TARGET_SECONDS]
    if slow:
        print(f"over {TARGET_SECONDS} s: {', '.join(slow)}")
    return 1 if slow and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
