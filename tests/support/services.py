"""Starting and stopping real processes for tests: celery workers, beat, and `orchestrator dev`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll until `condition()` is truthy and return it; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A child process in its own session (so its whole group can be signalled), logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = open(self.log_path, "ab")  # noqa: SIM115  (closed with the process)
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """Signal the main process only, as a container runtime or a service manager does."""
        if self.alive():
            os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group: the worker and its pool children die at once."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL if it has not ended within `grace` seconds."""
        if not self.alive():
            return
        assert self.proc is not None
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()
        with contextlib.suppress(ProcessLookupError):  # pool children that outlived their parent
            os.killpg(self.pid, signal.SIGKILL)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[str]:
        """The log's whole lines: a line the process is still writing (read before its newline) is
        left for the next read, so a test that parses each line never sees half of one."""
        text = self.log_text()
        return text[: text.rfind("\n") + 1].splitlines()


def celery_worker(
    name: str,
    env: dict[str, str],
    log_dir: Path,
    concurrency: int = 2,
    queues: list[str] | None = None,
    pool: str = "prefork",
    node_name: str | None = None,
) -> Process:
    """A `celery worker` named `name` (its process and its log). By default its worker id is set to
    `name` through `ORCH_WORKER_ID`, so tests can name it; with `node_name` (`-n`, e.g. "w1@%h") it
    is started as users start it, without `ORCH_WORKER_ID` unless `env` has one."""
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "worker",
        "-n",
        node_name or f"{name}@%h",
        "-c",
        str(concurrency),
        "-P",
        pool,
        "-l",
        "info",
        "--without-gossip",
        "--without-mingle",
    ]
    if queues:
        argv += ["-Q", ",".join(queues)]
    own_id = {} if node_name else {"ORCH_WORKER_ID": name}
    return Process(name, argv, {**env, **own_id}, log_dir / f"{name}.log")


def expand_node_name(node_name: str) -> str:
    """What Celery makes of `-n name@%h` on this machine: the worker's node name."""
    return node_name.replace("%h", socket.gethostname())


def celery_beat(name: str, env: dict[str, str], log_dir: Path) -> Process:
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "beat",
        "-l",
        "info",
        "-s",
        str(log_dir / f"{name}-schedule"),
        "--pidfile=",
    ]
    return Process(name, argv, env, log_dir / f"{name}.log")


def process_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(overrides)
    return env


def run_quietly(
    argv: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def redis_server(name: str, port: int, log_dir: Path) -> Process:
    """A private redis-server that keeps nothing on disk: killing it loses every message it held."""
    argv = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(log_dir),
    ]
    return Process(name, argv, process_env(), log_dir / f"{name}.log")


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Wait until something accepts TCP connections on `port`."""

    def accepting() -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex((host, port)) == 0

    wait_for(accepting, timeout, f"a listener on {host}:{port}")
