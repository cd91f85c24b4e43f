"""Settings: every `ORCH_` environment variable the product reads, with its default, in one place."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

DEFAULT_DATABASE_URL = "sqlite:///var/orchestrator.sqlite3"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _networks(var: str, value: str) -> tuple[str, ...]:
    """The comma-separated CIDR ranges (or single addresses) of `var`, normalised. Raises ValueError
    naming the variable and the entry that is not one."""
    networks = []
    for part in _split(value):
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ValueError(f"{var} must be comma-separated CIDR ranges, got {part!r}") from None
    return tuple(networks)


def _flag(var: str, value: str) -> bool:
    word = value.strip().lower()
    if word not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(f"{var} must be 1/true/yes/on or 0/false/no/off, got {value!r}")
    return word in ("1", "true", "yes", "on")


class SettingsError(ValueError):
    """An `ORCH_*` variable that is not valid; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Typed, immutable configuration. Build it with `Settings.from_env()`."""

    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str = DEFAULT_BROKER_URL
    heartbeat_interval: float = 30.0
    heartbeat_timeout: float = 120.0
    recovery_interval: float = 30.0
    # how often beat sends the firing of due schedules: the most a fire time waits for its pass
    schedule_interval: float = 1.0
    shutdown_grace: float = 30.0
    retention_days: int = 30
    executor_modules: tuple[str, ...] = ()
    api_tokens: tuple[str, ...] = ()
    max_body_bytes: int = 1_048_576
    # ORCH_WORKER_ID; unset, a worker is known by its Celery node name (`-n`), which the core cannot know
    worker_id: str | None = None
    worker_concurrency: int | None = None
    db_pool_size: int = 5
    log_format: str = "text"
    # Celery task events (what Flower shows); benchmarks may turn them off with ORCH_TASK_EVENTS=0
    task_events: bool = True
    # what the product itself may connect to (orchestrator/egress.py): CIDR ranges, on top of the
    # built-in denial of link-local, loopback, private and other non-public ranges
    egress_deny: tuple[str, ...] = ()
    egress_allow: tuple[str, ...] = ()
    # the Redis that keeps the cluster-wide node metrics (ORCH_METRICS_URL); unset, the broker's own
    # when the broker is Redis, and none on RabbitMQ (orchestrator/metrics.py: store_url)
    metrics_url: str | None = None
    # open event streams one API process serves at once; more are answered 503 (api/events.py)
    max_streams: int = 200
    # ORCH_LIMITS: the deployment's executor limits over the `@executor` ones (orchestrator/limits.py),
    # JSON such as {"crm.push": {"concurrency": 4, "rate": "100/m"}}; checked here, read there
    limits: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read `ORCH_*` variables; unset ones keep their defaults. Raises `SettingsError` (a
        ValueError naming the variable) on a bad value."""
        try:
            settings = cls._read(os.environ if env is None else env)
            if settings.database_url != DEFAULT_DATABASE_URL:
                from orchestrator.database_urls import check_url  # pulls in SQLAlchemy's URL parser

                check_url(settings.database_url, "ORCH_DATABASE_URL")  # a bare mysql://, a driver of neither
            return settings
        except ValueError as exc:
            raise SettingsError(str(exc)) from None

    @classmethod
    def _read(cls, env: Mapping[str, str]) -> Settings:
        values: dict[str, Any] = {}
        text = {
            "database_url": "ORCH_DATABASE_URL",
            "broker_url": "ORCH_BROKER_URL",
            "worker_id": "ORCH_WORKER_ID",
            "log_format": "ORCH_LOG_FORMAT",
            "metrics_url": "ORCH_METRICS_URL",
        }
        numbers = {
            "heartbeat_interval": ("ORCH_HEARTBEAT_INTERVAL", float),
            "heartbeat_timeout": ("ORCH_HEARTBEAT_TIMEOUT", float),
            "recovery_interval": ("ORCH_RECOVERY_INTERVAL", float),
            "schedule_interval": ("ORCH_SCHEDULE_INTERVAL", float),
            "shutdown_grace": ("ORCH_SHUTDOWN_GRACE", float),
            "retention_days": ("ORCH_RETENTION_DAYS", int),
            "max_body_bytes": ("ORCH_MAX_BODY_BYTES", int),
            "worker_concurrency": ("ORCH_WORKER_CONCURRENCY", int),
            "db_pool_size": ("ORCH_DB_POOL_SIZE", int),
            "max_streams": ("ORCH_MAX_STREAMS", int),
        }
        for attr, var in text.items():
            if env.get(var):
                values[attr] = env[var]
        for attr, (var, kind) in numbers.items():
            if env.get(var):
                try:
                    values[attr] = kind(env[var])
                except ValueError:
                    raise ValueError(f"{var} must be a number, got {env[var]!r}") from None
        if env.get("ORCH_EXECUTOR_MODULES"):
            values["executor_modules"] = _split(env["ORCH_EXECUTOR_MODULES"])
        if env.get("ORCH_TASK_EVENTS"):
            values["task_events"] = _flag("ORCH_TASK_EVENTS", env["ORCH_TASK_EVENTS"])
        for attr, var in (("egress_deny", "ORCH_EGRESS_DENY"), ("egress_allow", "ORCH_EGRESS_ALLOW")):
            if env.get(var):
                values[attr] = _networks(var, env[var])
        if env.get("ORCH_LIMITS", "").strip():
            from orchestrator.limits import parse_overrides  # limits reads the settings in turn

            parse_overrides(env["ORCH_LIMITS"])
            values["limits"] = env["ORCH_LIMITS"]
        if env.get("ORCH_API_TOKENS"):
            values["api_tokens"] = _split(env["ORCH_API_TOKENS"])
        return cls(**values)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)
