"""The services of one run: its own MySQL database and Redis database (and RabbitMQ vhost on a
RabbitMQ pass), our workers, the raw Celery
workers and the API, all started here and stopped through `processes.Group`."""

from __future__ import annotations

import contextlib
import subprocess
import uuid

import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from bench import raw_app
from bench.config import BenchConfig
from bench.processes import (
    Group,
    Process,
    api_argv,
    base_env,
    celery_beat_argv,
    celery_worker_argv,
    free_port,
    wait_for,
)
from orchestrator.db import make_engine
from orchestrator.migrate import upgrade

OUR_QUEUES = ["orchestrator", "default"]
# The throughput scenarios run as production does: workers and beat with the product's default
# recovery settings (heartbeat every 30 s, timeout 120 s, a sweep every 30 s), so none is overridden.
PRODUCTION: dict[str, str] = {}
# short recovery timings, as the chaos tests use: heartbeat 0.5 s, timeout 3 s, sweep every 1 s
FAST = {
    "ORCH_HEARTBEAT_INTERVAL": "0.5",
    "ORCH_HEARTBEAT_TIMEOUT": "3",
    "ORCH_RECOVERY_INTERVAL": "1",
    "ORCH_SHUTDOWN_GRACE": "3",
}
# a sweep every second that presumes a message lost after 2 s: any queue longer than 2 s of work
# is a backlog it must leave alone (the backlog scenario)
BACKLOG = {"ORCH_HEARTBEAT_TIMEOUT": "2", "ORCH_RECOVERY_INTERVAL": "1"}


def recreate_database(url: str) -> None:
    """Drop and create the run's database, then migrate it as production does."""
    parsed = make_url(url)
    server = create_engine(parsed.set(database=""), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
        conn.execute(text(f"CREATE DATABASE `{parsed.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    server.dispose()
    upgrade(url)


def drop_database(url: str) -> None:
    parsed = make_url(url)
    server = create_engine(parsed.set(database=""), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
    server.dispose()


def clear_vhost(url: str) -> None:
    """Start a RabbitMQ pass on an empty vhost: delete the queues an earlier run may have left, and
    create the vhost first (rabbitmqctl, so on this host's server) when the server says it is missing."""
    try:
        _delete_queues(url)
    except Exception as exc:
        if "vhost" not in str(exc).lower():  # refused, unreachable, a wrong password: said as it is
            raise
        vhost = url.rsplit("/", 1)[-1] or "/"
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, timeout=60)
        grant = ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, make_url_user(url), ".*", ".*", ".*"]
        subprocess.run(grant, check=True, timeout=60)
        _delete_queues(url)


def _delete_queues(url: str) -> None:
    from kombu import Connection

    with Connection(url, connect_timeout=10) as conn:
        conn.connect()
        for queue in (*OUR_QUEUES, raw_app.QUEUE):
            channel = conn.channel()
            try:
                channel.queue_delete(queue)
            except Exception as exc:  # never declared: nothing to delete
                if str(getattr(exc, "reply_code", "")) != "404":
                    raise
            finally:
                with contextlib.suppress(Exception):
                    channel.close()


def make_url_user(url: str) -> str:
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(url).username or "guest")


class Cluster:
    """Ours and raw side by side on one broker (the run's Redis database)."""

    def __init__(self, config: BenchConfig, group: Group) -> None:
        self.config = config
        self.group = group
        self.redis = redis.Redis.from_url(config.redis_url)
        self.engine: Engine | None = None
        self.api: Process | None = None
        self.api_url = ""
        self.ours: dict[str, Process] = {}
        self.raw: list[Process] = []
        self.beat: Process | None = None

    def prepare(self) -> Engine:
        recreate_database(self.config.mysql_url)
        self.redis.flushdb()  # only this run's database
        if self.config.broker == "amqp":
            clear_vhost(self.config.amqp_url)
        self.engine = make_engine(self.config.mysql_url, pool_size=8)
        return self.engine

    def ours_env(self, **extra: str) -> dict[str, str]:
        # task events off on both sides (ORCH_TASK_EVENTS=0 here; the raw app never sends them)
        return base_env(
            ORCH_DATABASE_URL=self.config.mysql_url,
            ORCH_BROKER_URL=self.config.broker_url,
            # node metrics are kept in the run's Redis on either broker, so both pay for them
            ORCH_METRICS_URL=self.config.redis_url,
            ORCH_TASK_EVENTS="0",
            **extra,
        )

    def start_api(self) -> str:
        port = free_port()
        argv = api_argv(port, self.config.api_workers, self.config.api_threads)
        self.api = self.group.start("api", argv, self.ours_env())
        self.api_url = f"http://127.0.0.1:{port}"
        import requests

        def healthy() -> bool:
            assert self.api is not None and self.api.alive(), (
                f"API exited:\n{self.api and self.api.log_text()[-3000:]}"
            )
            try:
                return requests.get(f"{self.api_url}/api/v1/definitions", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(healthy, 60, "the API", interval=0.2)
        return self.api_url

    def start_ours(self, name: str, fast: bool = False, settings: dict[str, str] | None = None) -> Process:
        """A worker of ours with FAST recovery timings, or `settings`, or production's (the default)."""
        env = self.ours_env(ORCH_WORKER_ID=name, **(FAST if fast else settings or PRODUCTION))
        argv = celery_worker_argv("workers.app", name, self.config.concurrency, OUR_QUEUES)
        process = self.group.start(name, argv, env)
        self.ours[name] = process
        assert self.engine is not None
        engine = self.engine

        def registered() -> bool:
            assert process.alive(), f"worker {name} exited:\n{process.log_text()[-3000:]}"
            with engine.connect() as conn:
                found = conn.execute(
                    text("SELECT 1 FROM workers WHERE id = :id AND status = 'active'"), {"id": name}
                ).first()
            return found is not None

        wait_for(registered, 60, f"worker {name} to register", interval=0.1)
        return process

    def stop_ours(self, name: str) -> None:
        process = self.ours.pop(name, None)
        if process is not None:
            process.stop()

    def start_beat(self, settings: dict[str, str] | None = None) -> Process:
        """The one beat (a running one is stopped first), with `settings` (default: production's)."""
        self.stop_beat()
        env = self.ours_env(**(PRODUCTION if settings is None else settings))
        schedule = self.config.log_dir / f"beat-{uuid.uuid4().hex[:8]}"
        beat = self.beat = self.group.start("beat", celery_beat_argv("workers.app", schedule), env)

        def scheduling() -> bool:
            assert beat.alive(), f"beat exited:\n{beat.log_text()[-3000:]}"
            return any(schedule.parent.glob(schedule.name + "*"))

        # its schedule file is opened once it has imported everything: what follows is measured
        wait_for(scheduling, 60, "beat to start", interval=0.1)
        return beat

    def stop_beat(self) -> None:
        if self.beat is not None:
            self.beat.stop()
            self.beat = None

    def start_raw(self, name: str = "raw1") -> Process:
        env = base_env(BENCH_REDIS_URL=self.config.redis_url, BENCH_BROKER_URL=self.config.broker_url)
        argv = celery_worker_argv("bench.raw_app", name, self.config.concurrency, [raw_app.QUEUE])
        process = self.group.start(name, argv, env)
        self.raw.append(process)
        key = f"bench:raw:ready:{uuid.uuid4()}"
        raw_app.hop.apply_async((key,))
        wait_for(lambda: self.redis.llen(key) > 0, 60, f"raw worker {name}", interval=0.1)
        self.redis.delete(key)
        return process

    def memory_targets(self) -> dict[str, list[int]]:
        targets = {
            "ours worker": [p.pid for p in self.ours.values() if p.alive()],
            "raw worker": [p.pid for p in self.raw if p.alive()],
        }
        if self.api is not None and self.api.alive():
            targets["API (gunicorn)"] = [self.api.pid]
        return targets

    def cost_targets(self) -> dict[str, list[int]]:
        """The processes whose CPU `bench/cost.py` counts, by kind; the database and broker servers
        are the machine's (their CPU is everything they did meanwhile)."""
        from bench.cost import DATABASE_COMMANDS, RABBITMQ_COMMANDS, pids_of

        if self.config.broker == "amqp":
            broker = pids_of(RABBITMQ_COMMANDS)
        else:
            broker = [int(self.redis.info("server")["process_id"])]
        return {
            "ours worker": [p.pid for p in self.ours.values() if p.alive()],
            "beat": [self.beat.pid] if self.beat is not None and self.beat.alive() else [],
            "raw worker": [p.pid for p in self.raw if p.alive()],
            "API": [self.api.pid] if self.api is not None and self.api.alive() else [],
            "MariaDB": pids_of(DATABASE_COMMANDS),
            "broker": broker,
        }
