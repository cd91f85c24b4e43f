"""What each `orchestrator` sub-command's `--help` says about its settings: the `ORCH_*` environment
variables it reads, with their defaults, and how it ends.

Defaults are taken from `Settings` itself, so the help cannot drift from what the code does.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Iterable

from orchestrator.settings import Settings
from orchestrator.status_text import EXIT_CODES_HELP

_DEFAULTS = Settings()

# variable: what it means (and its default)
SETTINGS: dict[str, str] = {
    "ORCH_API_URL": "the API to talk to (default http://127.0.0.1:8080)",
    "ORCH_API_TOKEN": "bearer token sent as `Authorization: Bearer ...` (one of the API's ORCH_API_TOKENS)",
    "ORCH_DATABASE_URL": (
        "SQLAlchemy URL of the database: mysql+pymysql://, mysql+mysqldb:// or sqlite:// "
        f"(default {_DEFAULTS.database_url})"
    ),
    "ORCH_BROKER_URL": f"Celery broker URL (default {_DEFAULTS.broker_url})",
    "ORCH_METRICS_URL": "Redis URL of the metrics store (default: the broker when it is Redis, else none)",
    "ORCH_EXECUTOR_MODULES": "comma-separated modules whose @executor functions are loaded",
    "ORCH_LIMITS": (
        'executor limits over the @executor ones, JSON: {"crm.push": {"concurrency": 4, "rate": "100/m"}}'
        " (null removes one)"
    ),
    "ORCH_API_TOKENS": "comma-separated bearer tokens required on /api/ (default: none, the API is open)",
    "ORCH_API_WORKERS": "default of --workers (2)",
    "ORCH_MAX_BODY_BYTES": f"larger request bodies get 413 (default {_DEFAULTS.max_body_bytes})",
    "ORCH_MAX_STREAMS": f"event streams per API process; more get 503 (default {_DEFAULTS.max_streams})",
    "ORCH_HEARTBEAT_INTERVAL": f"seconds between heartbeats (default {_DEFAULTS.heartbeat_interval:g})",
    "ORCH_HEARTBEAT_TIMEOUT": (
        "a node or worker silent this many seconds is presumed lost "
        f"(default {_DEFAULTS.heartbeat_timeout:g})"
    ),
    "ORCH_RECOVERY_INTERVAL": f"seconds between recovery sweeps (default {_DEFAULTS.recovery_interval:g})",
    "ORCH_SCHEDULE_INTERVAL": (
        f"seconds between passes that fire due schedules (default {_DEFAULTS.schedule_interval:g})"
    ),
    "ORCH_SHUTDOWN_GRACE": (
        f"seconds a stopping worker lets running nodes finish (default {_DEFAULTS.shutdown_grace:g})"
    ),
    "ORCH_RETENTION_DAYS": (
        f"logs of instances finished longer ago are pruned (default {_DEFAULTS.retention_days})"
    ),
    "ORCH_WORKER_ID": "this worker's id (default: its Celery node name, -n)",
    "ORCH_WORKER_CONCURRENCY": "node slots of this worker (default: Celery's, one per CPU)",
    "ORCH_DB_POOL_SIZE": f"database connections per process (default {_DEFAULTS.db_pool_size})",
    "ORCH_LOG_FORMAT": f"text or json (default {_DEFAULTS.log_format})",
    "ORCH_TASK_EVENTS": "0 turns off the Celery task events Flower shows (default 1)",
    "ORCH_EGRESS_DENY": "CIDR ranges the product never connects to, on top of the built-in ones",
    "ORCH_EGRESS_ALLOW": "CIDR ranges opened among the built-in denied ones (loopback, private...)",
    "ORCH_DEV_DIR": "where the dev database, broker socket and example data live (default var/dev)",
    "ORCH_EXAMPLES_DATA_DIR": "where the example executors keep their SQLite files",
}

_WIDTH = 100
_SERVER_COMMON = ("ORCH_DATABASE_URL", "ORCH_BROKER_URL", "ORCH_EXECUTOR_MODULES")
_CLIENT = ("ORCH_API_URL", "ORCH_API_TOKEN")
_UNREACHABLE = "exit status 1, with one line on stderr, when the database cannot be reached"

COMMAND_SETTINGS: dict[str, tuple[str, ...]] = {
    "dev": (
        "ORCH_DEV_DIR",
        "ORCH_EXECUTOR_MODULES",
        "ORCH_EXAMPLES_DATA_DIR",
        "ORCH_API_TOKENS",
        "ORCH_HEARTBEAT_INTERVAL",
        "ORCH_HEARTBEAT_TIMEOUT",
        "ORCH_RECOVERY_INTERVAL",
        "ORCH_SCHEDULE_INTERVAL",
        "ORCH_SHUTDOWN_GRACE",
        "ORCH_EGRESS_ALLOW",
        "ORCH_LIMITS",
        "ORCH_LOG_FORMAT",
    ),
    "api": (
        *_SERVER_COMMON,
        "ORCH_METRICS_URL",
        "ORCH_API_TOKENS",
        "ORCH_API_WORKERS",
        "ORCH_LIMITS",
        "ORCH_MAX_BODY_BYTES",
        "ORCH_MAX_STREAMS",
        "ORCH_HEARTBEAT_TIMEOUT",
        "ORCH_DB_POOL_SIZE",
        "ORCH_LOG_FORMAT",
        "ORCH_EGRESS_DENY",
        "ORCH_EGRESS_ALLOW",
    ),
    "worker": (
        *_SERVER_COMMON,
        "ORCH_METRICS_URL",
        "ORCH_WORKER_ID",
        "ORCH_WORKER_CONCURRENCY",
        "ORCH_LIMITS",
        "ORCH_HEARTBEAT_INTERVAL",
        "ORCH_HEARTBEAT_TIMEOUT",
        "ORCH_SHUTDOWN_GRACE",
        "ORCH_RETENTION_DAYS",
        "ORCH_DB_POOL_SIZE",
        "ORCH_LOG_FORMAT",
        "ORCH_TASK_EVENTS",
        "ORCH_EGRESS_DENY",
        "ORCH_EGRESS_ALLOW",
    ),
    # beat only sends the sweeps' messages: the workers run them against the database
    "beat": (
        "ORCH_BROKER_URL",
        "ORCH_RECOVERY_INTERVAL",
        "ORCH_SCHEDULE_INTERVAL",
        "ORCH_EXECUTOR_MODULES",
        "ORCH_LOG_FORMAT",
    ),
    "db": ("ORCH_DATABASE_URL",),
    "submit": _CLIENT,
    "status": _CLIENT,
    "logs": _CLIENT,
    "signal": _CLIENT,
    "definitions": _CLIENT,
    "schedules": _CLIENT,
    "limits": _CLIENT,
}

_NOTES: dict[str, str] = {
    "dev": (
        "It sets ORCH_DATABASE_URL (SQLite under ORCH_DEV_DIR) and ORCH_BROKER_URL (its own Redis) "
        "itself, and uses shorter timings than production unless they are set."
    ),
    "db": _UNREACHABLE,
    "worker": _UNREACHABLE + " at start (Celery keeps retrying the broker itself)",
    "submit": EXIT_CODES_HELP,
    "status": EXIT_CODES_HELP,
    "logs": "exit status: 0 done, 2 the API refused the request or did not answer",
    "signal": "exit status: 0 delivered or stored until the wait node is reached, 2 the API refused it "
    "(no such instance or signal name, the instance has ended, the node is done, a signal of that name "
    "is already stored) or did not answer, or a wrong command line",
    "definitions": "exit status: 0 stored (or identical), 2 refused (every problem is printed) or no answer",
    "schedules": "exit status: 0 done, 2 refused (every problem is printed) or no answer",
    "limits": "exit status: 0 done, 2 refused (every problem is printed), no answer, or a wrong command line",
}


def settings_text(names: Iterable[str]) -> str:
    """`settings (environment):` and one aligned line per variable."""
    names = list(names)
    width = max(len(name) for name in names)
    lines = [
        textwrap.fill(
            SETTINGS[name],
            _WIDTH,
            initial_indent=f"  {name:<{width}}  ",
            subsequent_indent=" " * (width + 4),
        )
        for name in names
    ]
    return "settings (environment):\n" + "\n".join(lines)


def epilog(command: str) -> str:
    """The end of `orchestrator <command> --help`: the settings it reads and, where there is one, a
    note on its exit status."""
    text = settings_text(COMMAND_SETTINGS[command])
    note = _NOTES.get(command)
    return f"{text}\n\n{textwrap.fill(note, _WIDTH)}" if note else text


def describe_settings(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Give every sub-command parser that has an entry here its epilog, kept as written."""
    for name, parser in subparsers.choices.items():
        if name in COMMAND_SETTINGS:
            parser.epilog = epilog(name)
            parser.formatter_class = argparse.RawDescriptionHelpFormatter
