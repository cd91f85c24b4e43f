"""The processes a run starts (workers, API, beat), each in its own process group, all stopped at the end.

Starting, signalling and stopping one process is the test suite's `Process`
(`tests/support/services.py`): one implementation for both. Every process is registered in `Group`
when started; `Group.stop_all` (called from a `finally` and at interpreter exit) stops each one
(SIGTERM, then SIGKILL of its group).
"""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path

from bench.config import ROOT
from tests.support.services import Process, free_port, wait_for

__all__ = ["Group", "Process", "free_port", "wait_for", "base_env"]


class Group:
    """Starts processes and stops every one of them, also on failure or Ctrl-C."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.started: list[Process] = []
        atexit.register(self.stop_all)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Process:
        process = Process(name, argv, env, self.log_dir / f"{name}.log").start()
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        while self.started:
            self.started.pop().stop()


def base_env(**overrides: str) -> dict[str, str]:
    """The caller's environment without `ORCH_*` (so nothing leaks in), plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(overrides)
    return env


def celery_worker_argv(app: str, name: str, concurrency: int, queues: list[str]) -> list[str]:
    """`celery worker` as production runs it: prefork, no gossip/mingle, warnings only."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "-n",
        f"{name}@%h",
        "-c",
        str(concurrency),
        "-P",
        "prefork",
        "-l",
        "warning",
        "--without-gossip",
        "--without-mingle",
        "-Q",
        ",".join(queues),
    ]


def celery_beat_argv(app: str, schedule: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "beat",
        "-l",
        "warning",
        "-s",
        str(schedule),
        "--pidfile=",
    ]


def api_argv(port: int, workers: int, threads: int) -> list[str]:
    """`orchestrator api`: gunicorn with gthread workers, as deployed."""
    return [
        sys.executable,
        "-m",
        "orchestrator_cli",
        "api",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--threads",
        str(threads),
    ]
