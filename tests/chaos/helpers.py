"""Helpers for chaos tests: read what MySQL and the executors' effect table say happened, measure
recoveries, and break the database connections of every process of this test run."""

from __future__ import annotations

import os
import shutil
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, text

from orchestrator.models import InstanceRow, LogRow, NodeRow, utcnow
from tests.support import executors as test_executors
from tests.support.fixtures import FAST
from tests.support.services import (
    Process,
    free_port,
    process_env,
    redis_server,
    run_quietly,
    wait_for,
    wait_for_port,
)

# the server script itself: the packaged `rabbitmq-server` wrapper switches to the rabbitmq user
RABBITMQ_SERVER = (
    "/usr/lib/rabbitmq/bin/rabbitmq-server"
    if os.path.exists("/usr/lib/rabbitmq/bin/rabbitmq-server")
    else shutil.which("rabbitmq-server") or "rabbitmq-server"
)

Key = tuple[str, str]  # (instance id, node id)

# SIGKILL -> the node runs again elsewhere: lease expiry, the next sweep, and a little slack
RECOVERY_BOUND_S = float(FAST["ORCH_HEARTBEAT_TIMEOUT"]) + float(FAST["ORCH_RECOVERY_INTERVAL"]) + 2

# (what was measured, seconds): every recovery event of this run, summarised at the end (conftest.py)
RECOVERIES: list[tuple[str, float]] = []


def record_recovery(what: str, seconds: float) -> None:
    RECOVERIES.append((what, seconds))


def summary_lines() -> list[str]:
    by_what: dict[str, list[float]] = defaultdict(list)
    for what, seconds in RECOVERIES:
        by_what[what].append(seconds)
    return [
        f"{what}: n={len(values)} min={min(values):.2f}s median={statistics.median(values):.2f}s "
        f"max={max(values):.2f}s"
        for what, values in sorted(by_what.items())
    ]


def describe(values: Iterable[float]) -> str:
    values = sorted(values)
    if not values:
        return "n=0"
    return (
        f"n={len(values)} min={values[0]:.2f}s median={statistics.median(values):.2f}s max={values[-1]:.2f}s"
    )


def node_rows(engine: Engine, instance_ids: Iterable[str]) -> dict[Key, Any]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(NodeRow.__table__).where(NodeRow.instance_id.in_(list(instance_ids)))
        ).all()
    return {(row.instance_id, row.node_id): row for row in rows}


def log_rows(engine: Engine, instance_ids: Iterable[str], like: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(LogRow.__table__)
                .where(LogRow.instance_id.in_(list(instance_ids)), LogRow.message.like(like))
                .order_by(LogRow.id)
            ).all()
        )


def effect_rows(engine: Engine, instance_ids: Iterable[str], kind: str) -> list[Any]:
    table = test_executors.effects
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(table)
                .where(table.c.instance_id.in_(list(instance_ids)), table.c.kind == kind)
                .order_by(table.c.id)
            ).all()
        )


def instance_statuses(engine: Engine, instance_ids: Iterable[str]) -> Counter[str]:
    with engine.connect() as conn:
        return Counter(
            conn.execute(select(InstanceRow.status).where(InstanceRow.id.in_(list(instance_ids)))).scalars()
        )


def all_finished(engine: Engine, instance_ids: list[str]) -> bool:
    statuses = instance_statuses(engine, instance_ids)
    return sum(statuses[s] for s in ("completed", "failed", "cancelled")) == len(instance_ids)


def wait_all_completed(engine: Engine, instance_ids: list[str], timeout: float) -> None:
    """Wait until every instance has ended, then require that every one completed."""
    try:
        wait_for(lambda: all_finished(engine, instance_ids), timeout, "every instance to end", interval=0.25)
    finally:
        statuses = instance_statuses(engine, instance_ids)
    assert statuses == Counter({"completed": len(instance_ids)}), dict(statuses)


@dataclass
class CommitCounts:
    nodes: int
    completed_lines: int
    committed_effects: int
    extra_effects: int
    handed_back: int
    fenced: int
    effects_checked: bool = True

    def __str__(self) -> str:
        effects = (
            f"{self.committed_effects} effects of committed attempts, {self.extra_effects} extra effects "
            f"of interrupted attempts, "
            if self.effects_checked
            else ""
        )
        return (
            f"{self.nodes} nodes, {self.completed_lines} 'node completed' lines, {effects}"
            f"{self.handed_back} hand-backs, {self.fenced} fenced results"
        )


def assert_each_node_committed_once(
    engine: Engine, instance_ids: list[str], effect_kind: str | None = "run", executor: str = "tests.work"
) -> CommitCounts:
    """Every node is completed, has exactly one 'node completed' log line naming the row's attempt,
    and (with `effect_kind`, for nodes run by `executor`) exactly one effect row of that attempt;
    effects of other attempts (killed or fenced ones) are counted, not failed: execution is at least
    once, the commit exactly once."""
    rows = node_rows(engine, instance_ids)
    completed = log_rows(engine, instance_ids, "node completed")
    lines = Counter((line.instance_id, line.node_id) for line in completed)
    attempts = {(line.instance_id, line.node_id): line.attempt for line in completed}
    not_completed = {key: row.status for key, row in rows.items() if row.status != "completed"}
    assert not not_completed, not_completed
    twice = {key: n for key, n in lines.items() if n != 1}
    assert not twice, f"nodes with more than one 'node completed' line: {twice}"
    assert set(lines) == set(rows)
    wrong = {key: (attempts[key], row.attempt) for key, row in rows.items() if attempts[key] != row.attempt}
    assert not wrong, f"'node completed' names another attempt than the row: {wrong}"
    committed = extra = 0
    if effect_kind is not None:
        per_attempt: dict[Key, Counter[int]] = defaultdict(Counter)
        for effect in effect_rows(engine, instance_ids, effect_kind):
            per_attempt[(effect.instance_id, effect.node_id)][effect.attempt] += 1
        checked = {key: row for key, row in rows.items() if row.executor == executor}
        bad = {
            key: dict(per_attempt[key]) for key, row in checked.items() if per_attempt[key][row.attempt] != 1
        }
        assert not bad, f"committed attempt without exactly one effect (attempt: count): {bad}"
        committed = len(checked)
        extra = sum(sum(per_attempt[key].values()) for key in checked) - committed
    return CommitCounts(
        nodes=len(rows),
        completed_lines=sum(lines.values()),
        committed_effects=committed,
        extra_effects=extra,
        handed_back=len(log_rows(engine, instance_ids, "node handed back%")),
        fenced=len(log_rows(engine, instance_ids, "result of attempt % dropped%")),
        effects_checked=effect_kind is not None,
    )


@dataclass(frozen=True)
class RecoveryEvent:
    key: Key
    worker: str
    reason: str
    handed_back_s: float
    running_again_s: float | None


def recovery_events(
    engine: Engine, instance_ids: list[str], kills: dict[str, list[datetime]]
) -> list[RecoveryEvent]:
    """For each hand-back of a node whose worker was killed: seconds from the kill that ended the
    attempt to the hand-back, and to the next attempt's claim ("node running").

    The kill that ended the attempt is the first one after its claim. An attempt killed before its
    first heartbeat has no "node running" line (it is written then, or with the result); for it, the
    last kill of its worker before the hand-back is taken (a later incarnation of the same id may
    have been killed too: the time measured is then shorter, never longer, than the real one)."""
    running = {
        (line.instance_id, line.node_id, line.attempt): line.created_at
        for line in log_rows(engine, instance_ids, "node running")
    }
    events = []
    for line in log_rows(engine, instance_ids, "node handed back%"):
        details = line.details or {}
        worker = details.get("previousWorker")
        key = (line.instance_id, line.node_id)
        claimed_at = running.get((*key, line.attempt - 1))
        if worker not in kills:
            continue
        before = [k for k in kills[worker] if k <= line.created_at]
        ending = before if claimed_at is None else [k for k in before if claimed_at <= k]
        if not ending:
            continue
        killed_at = ending[0] if claimed_at is not None else ending[-1]
        again = running.get((*key, line.attempt))
        events.append(
            RecoveryEvent(
                key,
                worker,
                str(details.get("reason")),
                (line.created_at - killed_at).total_seconds(),
                None if again is None else (again - killed_at).total_seconds(),
            )
        )
    return events


def kill_db_connections(engine: Engine) -> int:
    """KILL every MySQL connection to this test run's database except the one doing it: the
    workers', the beat's and this process's pooled ones. Other databases (other test runs) are left."""
    killed = 0
    with engine.connect() as conn:
        database = conn.execute(text("SELECT DATABASE()")).scalar()
        ids = conn.execute(
            text("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = :db AND ID <> CONNECTION_ID()"),
            {"db": database},
        ).scalars()
        for connection_id in list(ids):
            try:
                conn.execute(text(f"KILL {int(connection_id)}"))
                killed += 1
            except Exception:  # it ended on its own meanwhile
                pass
        conn.rollback()
    return killed


class OwnRedis:
    """A redis-server of the test's own (nothing kept on disk), to kill and start again on one port."""

    def __init__(self, processes: Any) -> None:
        self.processes = processes
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: Process | None = None
        self.starts = 0

    def start(self) -> OwnRedis:
        self.starts += 1
        self.process = redis_server(f"redis{self.starts}", self.port, self.processes.tmp_path).start()
        self.processes.started.append(self.process)  # stopped at teardown with the rest
        wait_for_port(self.port)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()


class OwnRabbit:
    """A RabbitMQ node of the test's own (its own name, ports, data and log directories under the
    test's tmp_path; no plugins), to kill and start again on the same data: the shared server is
    never touched. The node keeps its queues and persistent messages on disk across a restart."""

    START_TIMEOUT = 60.0  # a node starts in about 5 s here; a busy machine may take a while longer

    def __init__(self, processes: Any) -> None:
        self.processes = processes
        self.port = free_port()
        self.dist_port = free_port()
        self.home = processes.tmp_path / "rabbit"
        self.home.mkdir(exist_ok=True)
        self.name = f"orchtest-{os.getpid()}-{self.port}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        # the server-wide delivery acknowledgement timeout, as docs/recovery.md sets it
        (self.home / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nconsumer_timeout = 43200000\n"
        )
        (self.home / "enabled_plugins").write_text("[].\n")
        self.process: Process | None = None
        self.starts = 0

    def start(self) -> OwnRabbit:
        self.starts += 1
        env = process_env(
            HOME=str(self.home),  # its Erlang cookie is created here
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.home / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.home / "log"),
            RABBITMQ_CONFIG_FILE=str(self.home / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.home / "enabled_plugins"),
        )
        name = f"rabbit{self.starts}"
        self.process = Process(name, [RABBITMQ_SERVER], env, self.processes.tmp_path / f"{name}.log")
        self.process.start()
        self.processes.started.append(self.process)  # stopped at teardown with the rest
        wait_for_port(self.port, timeout=self.START_TIMEOUT)
        return self

    def kill(self) -> None:
        """SIGKILL the node (its whole process group): no clean shutdown, as in a lost machine."""
        assert self.process is not None
        self.process.kill()


SEND_SCHEDULES = """
import sys
from workers.dispatch import send_schedule
for instance_id in sys.argv[1:]:
    send_schedule(instance_id)
"""


def send_schedules(broker_url: str, database_url: str, instance_ids: list[str]) -> None:
    """Enqueue `schedule` for each instance through `broker_url`, from a process of its own (the
    test process's Celery app is bound to the shared test Redis at import)."""
    env = process_env(
        ORCH_BROKER_URL=broker_url,
        ORCH_DATABASE_URL=database_url,
        ORCH_EXECUTOR_MODULES="tests.support.executors",
        ORCH_TASK_EVENTS="0",
    )
    result = run_quietly([sys.executable, "-c", SEND_SCHEDULES, *instance_ids], env, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]


def now() -> datetime:
    return utcnow()
