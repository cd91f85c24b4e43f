"""What a node costs beside what a raw Celery task costs: CPU seconds of each kind of process over a
run, and the SQL statements and commits the database served, divided by the nodes run.

CPU is read from /proc (Linux) for whole process trees: a Celery worker with its pool children,
gunicorn with its workers. The database's and the broker's CPU, and MariaDB's statement counters,
are server-wide: on a machine where something else uses them, these rows count that too."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, text

from bench.memory import proc_children
from bench.stats import Row, Target

_TICK = os.sysconf("SC_CLK_TCK")
DATABASE_COMMANDS = ("mariadbd", "mysqld")
RABBITMQ_COMMANDS = ("beam.smp",)


def _cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds of these processes and all their descendants, now."""
    total, todo = 0.0, list(pids)
    while todo:
        pid = todo.pop()
        total += _cpu(pid)
        todo += proc_children(pid)
    return total


def pids_of(commands: tuple[str, ...]) -> list[int]:
    """Processes whose command name is one of `commands` (a server the run did not start)."""
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in commands:
                found.append(int(comm.parent.name))
        except OSError:
            continue
    return found


@dataclass
class Cost:
    """One run's deltas: CPU seconds per process kind, statements and commits."""

    cpu: dict[str, float] = field(default_factory=dict)
    statements: int = 0
    commits: int = 0


class CostMeter:
    """`with meter.measure() as cost:` around a run fills `cost` with what the run used."""

    def __init__(self, engine: Engine, targets: Callable[[], dict[str, list[int]]]) -> None:
        self.engine = engine
        self.targets = targets  # process kind -> pids, read at the start of each measure

    def _counters(self) -> tuple[int, int]:
        if self.engine.dialect.name not in ("mysql", "mariadb"):
            return 0, 0
        with self.engine.connect() as conn:
            rows = dict(
                conn.execute(
                    text("SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Com_commit')")
                ).all()
            )
        return int(rows.get("Questions", 0)), int(rows.get("Com_commit", 0))

    @contextmanager
    def measure(self) -> Iterator[Cost]:
        cost = Cost()
        targets = self.targets()
        before = {kind: tree_cpu(pids) for kind, pids in targets.items()}
        statements, commits = self._counters()
        yield cost
        after_statements, after_commits = self._counters()
        cost.cpu = {kind: tree_cpu(pids) - before[kind] for kind, pids in targets.items()}
        # the two counter reads are statements too
        cost.statements = max(0, after_statements - statements - 2)
        cost.commits = after_commits - commits


class CostRows:
    """The per-node rows of one scenario: ours beside raw Celery where raw has the same kind."""

    def __init__(self, scenario: str, worker_target: Target | None = None) -> None:
        self.worker = Row(scenario, "worker CPU per node (raw: per task)", "ms", target=worker_target)
        self.api = Row(scenario, "API CPU per node", "ms")
        self.database = Row(scenario, "MariaDB CPU per node", "ms")
        self.broker = Row(scenario, "broker CPU per node (raw: per task)", "ms")
        self.statements = Row(scenario, "SQL statements per node", "statements")
        self.commits = Row(scenario, "commits per node", "commits")

    def add(self, ours: Cost, nodes: int, raw: Cost | None = None, raw_tasks: int = 0) -> None:
        def per(cost: Cost, kind: str, count: int) -> float:
            return cost.cpu.get(kind, 0.0) / count * 1000

        self.worker.ours.append(per(ours, "ours worker", nodes) + per(ours, "beat", nodes))
        self.api.ours.append(per(ours, "API", nodes))
        self.database.ours.append(per(ours, "MariaDB", nodes))
        self.broker.ours.append(per(ours, "broker", nodes))
        self.statements.ours.append(ours.statements / nodes)
        self.commits.ours.append(ours.commits / nodes)
        if raw is not None and raw_tasks:
            self.worker.raw.append(per(raw, "raw worker", raw_tasks))
            self.broker.raw.append(per(raw, "broker", raw_tasks))

    def rows(self) -> list[Row]:
        return [self.worker, self.api, self.database, self.broker, self.statements, self.commits]
