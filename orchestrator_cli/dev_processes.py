"""The child processes of `orchestrator dev`: one command line each, and how they start and stop.

Two workers, so the orchestrator's own tasks never wait behind nodes: the node worker (2 slots)
consumes every queue but `orchestrator`; the control worker (1 slot, with the embedded beat)
consumes only `orchestrator` (`schedule`, the sweeps, callbacks, sub-workflow follow-ups). Two long
nodes then hold both node slots and a third instance still starts: its first node is `queued`,
waiting for a worker, and says so.

Flower's command line is here too, and tests start Flower with it, so what they read is what
`make run` shows. Each child runs in its own session: a Ctrl-C in the terminal reaches the dev
server alone, which stops the children in order, and a child that does not stop in time is killed
with its whole process group (pool processes and the embedded beat included).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

CONTROL_QUEUE = "orchestrator"  # = workers.app.CONTROL_QUEUE, not imported: that would load the Celery app
NODE_SLOTS = 2
# Flower serves its HTTP API (/api/tasks, /api/workers...) without a password only with this set.
# Only for a Flower bound to 127.0.0.1: anyone who can reach its port could read every task and
# revoke tasks or shut workers down.
FLOWER_OPEN_API = {"FLOWER_UNAUTHENTICATED_API": "true"}


def celery_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "workers.app", *args]


def node_worker_argv() -> list[str]:
    """Every queue of the app but the control queue: the nodes' slots hold nodes only."""
    return celery_argv(
        "worker",
        "-c",
        str(NODE_SLOTS),
        "-X",
        CONTROL_QUEUE,
        "-l",
        "info",
        "-n",
        "dev@%h",
        "--without-gossip",
        "--without-mingle",
    )


def control_worker_argv(directory: Path) -> list[str]:
    """The control queue only, one slot, and the embedded beat that sends the sweeps to it."""
    return celery_argv(
        "worker",
        "-B",
        "-s",
        str(directory / "beat-schedule"),
        "-c",
        "1",
        "-Q",
        CONTROL_QUEUE,
        "-l",
        "info",
        "-n",
        "dev-control@%h",
        "--without-gossip",
        "--without-mingle",
    )


def flower_argv(port: int) -> list[str]:
    """Flower as `orchestrator dev` runs it: on 127.0.0.1 only (see FLOWER_OPEN_API); the broker is
    the one of `ORCH_BROKER_URL` in its environment."""
    return celery_argv("flower", "--address=127.0.0.1", f"--port={port}")


def flower_env(env: Mapping[str, str]) -> dict[str, str]:
    return {**env, **FLOWER_OPEN_API}


def control_worker_env(env: Mapping[str, str]) -> dict[str, str]:
    """A worker id set by the caller names the node worker; the control worker gets its own."""
    worker_id = env.get("ORCH_WORKER_ID")
    return {**env, "ORCH_WORKER_ID": f"{worker_id}-control"} if worker_id else dict(env)


@dataclass
class Children:
    """The dev server's child processes, in start order."""

    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, env=dict(env), stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[name] = proc
        return proc

    def pids(self) -> str:
        return ", ".join(f"{name} {proc.pid}" for name, proc in self.procs.items())

    def stop(self, grace: float) -> None:
        """SIGTERM to each (a worker's warm shutdown hands its running nodes back), wait up to `grace`
        seconds for all of them, then SIGKILL what is left of each process group."""
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        for proc in self.procs.values():
            # the leader's group: its pool processes and embedded beat, should they outlive it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
