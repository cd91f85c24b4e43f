"""`python -m bench.profile`: where a node's time goes, sampled with py-spy on our worker.

Starts the same services as the benchmark, then records the worker (main process and pool
children) with `py-spy record --subprocesses` while a chain and a fan-out run, and writes collapsed
stacks to `var/bench/profile-<shape>.txt` plus a summary of the hottest frames (own and cumulative).
py-spy comes with the `bench` extra: `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
from pathlib import Path

from bench import ours
from bench.config import BROKERS, FULL, BenchConfig
from bench.processes import Group


def summarize(collapsed: Path, top: int = 40) -> str:
    """Self and cumulative sample shares per frame, from py-spy's collapsed (`raw`) output."""
    own: collections.Counter[str] = collections.Counter()
    cumulative: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f.split(" (")[0] + " " + f.split("/")[-1].rstrip(")") for f in stack.split(";")[1:]]
        total += n
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            cumulative[frame] += n
    lines = [f"{total} samples", "", "own %   frame"]
    lines += [f"{100 * n / total:5.1f}  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "cum %   frame"]
    lines += [f"{100 * n / total:5.1f}  {frame}" for frame, n in cumulative.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--chain", type=int, default=500)
    parser.add_argument("--fan", type=int, default=1000)
    parser.add_argument("--broker", choices=BROKERS, default="redis", help="the broker the worker uses")
    args = parser.parse_args(argv)
    if shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
        print("py-spy is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    from bench import raw_app

    config = BenchConfig(FULL, broker=args.broker, **BenchConfig.from_env_defaults())  # type: ignore[arg-type]
    raw_app.configure(config.redis_url, config.broker_url)
    from bench.cluster import Cluster, drop_database

    group = Group(config.log_dir)
    cluster = Cluster(config, group)
    try:
        engine = cluster.prepare()
        cluster.start_api()
        worker = cluster.start_ours("ours1")
        client = ours.Orchestrator(cluster.api_url, engine)
        shapes = {
            "chain": (ours.chain_definition(args.chain), f"bench-chain-{args.chain}"),
            "fan": (ours.fan_definition(args.fan), f"bench-fan-{args.fan}"),
        }
        for shape, (definition, workflow) in shapes.items():
            client.define(definition)
            client.run(workflow)  # warm
            out = config.log_dir / f"profile-{shape}.txt"
            argv = [py_spy, "record", "--subprocesses", "--rate", "250", "--format", "raw"]
            spy = subprocess.Popen([*argv, "-o", str(out), "-p", str(worker.pid)], stdout=subprocess.DEVNULL)
            try:
                client.run(workflow)
            finally:
                spy.send_signal(2)  # SIGINT: py-spy writes what it has and exits
                spy.wait(timeout=60)
            summary = summarize(out)
            (config.log_dir / f"profile-{shape}-summary.txt").write_text(summary)
            print(f"== {shape} ==\n{summary}\n")
    finally:
        group.stop_all()
        if cluster.engine is not None:
            cluster.engine.dispose()
        drop_database(config.mysql_url)
        cluster.redis.flushdb()
    return 0


if __name__ == "__main__":
    sys.exit(main())
