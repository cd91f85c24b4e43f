"""Printing the results and writing them into `docs/BENCHMARKS.md`.

Only the part between the `bench:results` markers is rewritten, so the hand-written analysis around
it (how to read it, what the profile showed) survives a new run.
"""

from __future__ import annotations

import datetime
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from sqlalchemy import Engine, text

from bench.config import ROOT, BenchConfig
from bench.stats import Row, spread

START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"
PACKAGES = ("celery", "kombu", "redis", "SQLAlchemy", "PyMySQL", "Flask", "gunicorn")
# the distribution of each MySQL driver a run may use (`--driver`)
DRIVER_PACKAGES = {"pymysql": "PyMySQL", "mysqldb": "mysqlclient"}


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout
        return commit + (" + uncommitted changes" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def environment(engine: Engine, redis_version: str, config: BenchConfig) -> list[tuple[str, str]]:
    import os

    import psutil

    with engine.connect() as conn:
        mysql_version = str(conn.execute(text("SELECT VERSION()")).scalar())
    packages = (*PACKAGES, DRIVER_PACKAGES.get(config.driver, "PyMySQL"))
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in dict.fromkeys(packages))
    return [
        ("date", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("machine", f"{_cpu()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM"),
        ("os", platform.platform()),
        ("python", sys.version.split()[0]),
        ("packages", versions),
        ("services", f"MariaDB/MySQL {mysql_version}, Redis {redis_version} (same host)"),
        ("database driver", f"{config.driver} ({engine.dialect.dialect_description})"),
        ("code", _git()),
        (
            "setup",
            f"one worker per side, prefork -c {config.concurrency}, acks_late, prefetch 1, "
            "reject_on_worker_lost, task events off on both sides (ORCH_TASK_EVENTS=0), "
            f"API: gunicorn (`orchestrator api`) {config.api_workers} workers x {config.api_threads} threads",
        ),
        (
            "repetitions",
            f"{config.sizes.repetitions} per scenario ({'quick' if config.quick else 'full'} run)",
        ),
    ]


def _verdict(row: Row) -> str:
    if row.target is None:
        return ""
    met = row.met
    return f"{row.target.text}: " + ("**met**" if met else "missed" if met is False else "n/a")


def markdown(rows: Sequence[Row], env: Sequence[tuple[str, str]], memory: dict[str, int]) -> str:
    lines = ["| | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in env), ""]
    lines += [
        "| scenario | metric | ours: median (min-max) | baseline: median (min-max) | ratio | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    scenario = None
    for row in rows:
        shown = row.scenario if row.scenario != scenario else ""
        scenario = row.scenario
        unit = f" ({row.unit})" if row.unit else ""
        digits = 0 if not row.unit else 2 if row.unit == "ms" else 1
        baseline = spread(row.raw, digits) if row.raw else "-"
        if row.raw and row.note:
            baseline += f" ({row.note.removeprefix('baseline: ')})"
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
        ours = spread(row.ours, digits)
        lines.append(f"| {shown} | {row.metric}{unit} | {ours} | {baseline} | {ratio} | {_verdict(row)} |")
    if memory:
        lines += ["", "| process tree | peak RSS (MiB) |", "| --- | --- |"]
        lines += [f"| {name} | {value / 2**20:.0f} |" for name, value in memory.items()]
    return "\n".join(lines)


def console(rows: Sequence[Row], memory: dict[str, int]) -> str:
    out = []
    for row in rows:
        ratio = "" if row.ratio is None else f"  ratio {row.ratio:.2f}x"
        raw = f"  baseline {spread(row.raw, 2)}" if row.raw else ""
        verdict = _verdict(row).replace("**", "")
        out.append(
            f"{row.scenario[:40]:40} {row.metric[:38]:38} {spread(row.ours, 2):>24}{raw}{ratio}  {verdict}"
        )
    out += [f"peak RSS {name}: {value / 2**20:.0f} MiB" for name, value in memory.items()]
    return "\n".join(out)


SKELETON = f"""# Benchmarks

Generated by `make bench` (`python -m bench`); only the part between the markers is rewritten.

{START}
{END}
"""


def write(path: Path, body: str) -> None:
    """Replace the results section of `path` (created from a skeleton if missing)."""
    current = path.read_text() if path.exists() else SKELETON
    if START not in current or END not in current:
        current = current.rstrip() + "\n\n" + SKELETON.split("\n", 3)[3]
    head, rest = current.split(START, 1)
    _, tail = rest.split(END, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{head}{START}\n{body}\n{END}{tail}")
