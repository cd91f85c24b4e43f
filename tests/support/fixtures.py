"""pytest fixtures: a fresh MySQL schema per run, clean tables and Redis per test, live servers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import requests
from sqlalchemy import Engine, create_engine, delete, select, text
from sqlalchemy.engine import make_url

from orchestrator import catalog, executors, limits
from orchestrator.database_urls import MYSQL_DRIVERS, with_driver
from orchestrator.db import make_engine
from orchestrator.migrate import upgrade
from orchestrator.models import (
    CheckpointRow,
    DefinitionRow,
    InstanceRow,
    LimitOverrideRow,
    LimitRow,
    LogRow,
    NodeRow,
    ScheduleRow,
    WorkerRow,
)
from orchestrator.settings import Settings
from tests.support import executors as test_executors
from tests.support.services import Process, celery_beat, celery_worker, process_env, wait_for

MYSQL_URL = os.environ["ORCH_DATABASE_URL"]
REDIS_URL = os.environ["ORCH_BROKER_URL"]
AMQP_URL = os.environ["ORCH_TEST_AMQP_URL"]
BROKERS = {"redis": REDIS_URL, "amqp": AMQP_URL}
# the test database through each MySQL driver, for the tests marked `both_drivers`
DRIVER_URLS = {driver: with_driver(MYSQL_URL, driver) for driver in MYSQL_DRIVERS}
executors.load_modules(os.environ["ORCH_EXECUTOR_MODULES"].split(","))

# Short timings for every process a test starts: settings, not sleeps.
FAST = {
    "ORCH_HEARTBEAT_INTERVAL": "0.5",
    "ORCH_HEARTBEAT_TIMEOUT": "3",
    "ORCH_RECOVERY_INTERVAL": "1",
    "ORCH_SHUTDOWN_GRACE": "3",
}


def _require(what: str, check: Callable[[], Any]) -> None:
    try:
        check()
    except Exception as exc:  # a missing service fails loudly: tests never skip silently
        pytest.exit(
            f"{what} is not reachable ({exc}); start it or set ORCH_TEST_* (see tests/conftest.py)",
            returncode=3,
        )


@pytest.fixture(scope="session")
def mysql_engine() -> Iterator[Engine]:
    """A fresh database for this run, migrated with alembic like production."""
    url = make_url(MYSQL_URL)
    server = create_engine(url.set(database=""), isolation_level="AUTOCOMMIT")
    _require("MySQL", lambda: server.connect().close())
    with server.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{url.database}`"))
        conn.execute(text(f"CREATE DATABASE `{url.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    server.dispose()
    upgrade(MYSQL_URL)
    engine = make_engine(MYSQL_URL, pool_size=10)
    test_executors.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    _require("Redis", client.ping)
    yield client
    client.close()


@pytest.fixture()
def db(mysql_engine: Engine, redis_client: redis.Redis) -> Iterator[Engine]:
    """The MySQL engine, with every table emptied and the test Redis database flushed first."""
    with mysql_engine.begin() as conn:
        for table in (
            LogRow,
            CheckpointRow,
            NodeRow,
            InstanceRow,
            DefinitionRow,
            WorkerRow,
            ScheduleRow,
            LimitRow,
            LimitOverrideRow,
        ):
            conn.execute(delete(table))
        conn.execute(delete(test_executors.effects))
    redis_client.flushdb()
    catalog.clear_cache()
    limits.set_api_overrides({})  # this process's copy of the (now emptied) limits set through the API
    yield mysql_engine


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`@pytest.mark.both_brokers`: the test runs once on Redis and once on RabbitMQ.
    `@pytest.mark.both_drivers`: once with PyMySQL and once with mysqlclient (fixture `database_url`)."""
    if metafunc.definition.get_closest_marker("both_brokers") and "broker_url" in metafunc.fixturenames:
        metafunc.parametrize("broker_url", list(BROKERS), indirect=True)
    if metafunc.definition.get_closest_marker("both_drivers") and "database_url" in metafunc.fixturenames:
        metafunc.parametrize("database_url", list(DRIVER_URLS), indirect=True)


@pytest.fixture()
def database_url(request: pytest.FixtureRequest) -> str:
    """The test database's URL for the processes the test starts (and its API): ORCH_TEST_MYSQL_URL
    as given, unless the test is marked `both_drivers` (then with each MySQL driver in turn). The
    test's own `db` engine stays on ORCH_TEST_MYSQL_URL's driver."""
    driver = getattr(request, "param", None)
    return MYSQL_URL if driver is None else DRIVER_URLS[driver]


@pytest.fixture()
def driver_engine(db: Engine, database_url: str) -> Iterator[Engine]:
    """An engine of `make_engine` on the (emptied) test database through `database_url`'s driver."""
    engine = make_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


def clear_amqp(url: str) -> None:
    """Delete the queues a test may have left on the RabbitMQ vhost (what FLUSHDB is on Redis)."""
    from kombu import Connection

    names = ["orchestrator", executors.DEFAULT_QUEUE, *executors.domains()]
    with Connection(url, connect_timeout=5) as conn:
        for name in dict.fromkeys(names):
            channel = conn.channel()
            try:
                channel.queue_delete(name)
            except Exception as exc:  # a queue never declared: 404 closes the channel, nothing to do
                if str(getattr(exc, "reply_code", "")) != "404":
                    raise
            finally:
                with contextlib.suppress(Exception):
                    channel.close()


_VHOSTS_MADE: set[str] = set()


def _with_vhost(url: str, action: Callable[[str], None]) -> None:
    """`action(url)`, creating the URL's vhost on this host's RabbitMQ first if the server says it is
    missing (as `.ci/run` does for the default one), once per run."""
    try:
        action(url)
    except Exception as exc:
        vhost = url.rsplit("/", 1)[-1]
        if "vhost" not in str(exc).lower() or not vhost or vhost in _VHOSTS_MADE:
            raise
        _VHOSTS_MADE.add(vhost)
        user = urlsplit(url).username or "guest"
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, timeout=60)
        grant = ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"]
        subprocess.run(grant, check=True, timeout=60)
        action(url)


@pytest.fixture()
def broker_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The broker of the processes the test starts and of its own sender: Redis unless the test is
    marked `both_brokers` (then each in turn). The RabbitMQ vhost starts with no queue."""
    from workers.app import use_broker

    url = BROKERS[getattr(request, "param", "redis")]
    if url == AMQP_URL:
        _require("RabbitMQ", lambda: _with_vhost(url, clear_amqp))
    use_broker(url)
    try:
        yield url
    finally:
        use_broker(REDIS_URL)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


class Processes:
    """Starts real worker, beat and server processes for one test; stops all of them at teardown."""

    def __init__(self, tmp_path: Path, broker_url: str = REDIS_URL, database_url: str = MYSQL_URL) -> None:
        self.tmp_path = tmp_path
        self.broker_url = broker_url
        self.started: list[Process] = []
        self.env = process_env(
            ORCH_DATABASE_URL=database_url,
            ORCH_BROKER_URL=broker_url,
            ORCH_EXECUTOR_MODULES="tests.support.executors,examples.executors",
            ORCH_EXAMPLES_DATA_DIR=str(tmp_path / "examples"),
            **FAST,
        )

    def worker(
        self,
        name: str = "w1",
        concurrency: int = 2,
        wait: bool = True,
        queues: list[str] | None = None,
        node_name: str | None = None,
        **env: str,
    ) -> Process:
        """Start a worker; its id is `name`, or with `node_name` (`-n`) whatever the worker makes
        of it (then registration is awaited by process id: the id is what such a test checks)."""
        process = celery_worker(
            name, {**self.env, **env}, self.tmp_path, concurrency, queues, node_name=node_name
        ).start()
        self.started.append(process)
        if wait:
            self.wait_registered(name, process, by_pid=node_name is not None)
        return process

    def wait_registered(self, name: str, process: Process, by_pid: bool = False) -> None:
        self.wait_all_registered({name: process}, by_pid=by_pid)

    def wait_all_registered(self, workers: dict[str, Process], by_pid: bool = False) -> None:
        """Wait until every one of `workers` (started with `wait=False`) is registered and active:
        started together, they start up side by side instead of one after the other."""
        engine = make_engine(MYSQL_URL, pool_size=1)
        pids = {process.pid: name for name, process in workers.items()}
        try:

            def registered() -> bool:
                for name, process in workers.items():
                    assert process.alive(), f"worker {name} exited:\n{process.log_text()[-3000:]}"
                column = WorkerRow.pid if by_pid else WorkerRow.id
                wanted = list(pids) if by_pid else list(workers)
                with engine.connect() as conn:
                    active = conn.execute(
                        select(column).where(column.in_(wanted), WorkerRow.status == "active")
                    ).scalars()
                    return set(active) >= set(wanted)

            wait_for(registered, 60, f"worker(s) {', '.join(workers)} to register")
        finally:
            engine.dispose()

    def workers(self, names: list[str], **options: Any) -> dict[str, Process]:
        """Start workers `names`, all with the same `worker` options, and wait for all of them."""
        started = {name: self.worker(name, wait=False, **options) for name in names}
        self.wait_all_registered(started)
        return started

    def beat(self, name: str = "beat", **env: str) -> Process:
        process = celery_beat(name, {**self.env, **env}, self.tmp_path).start()
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        """SIGKILL every process group at teardown: what a graceful stop does is asserted in the tests
        that make one, and waiting for each warm shutdown here costs seconds per test."""
        for process in reversed(self.started):
            process.kill()

    def logs(self) -> str:
        return "\n".join(f"===== {p.name} ({p.log_path}) =====\n{p.log_text()[-8000:]}" for p in self.started)


def egress_allowed(request: pytest.FixtureRequest) -> str | None:
    """What a test opens with `@pytest.mark.egress_allow("127.0.0.1/32", ...)`: the API and the
    processes it starts get it as ORCH_EGRESS_ALLOW. Without the mark they run with the production
    defaults, which deny loopback: a test that calls a local listener must say so."""
    mark = request.node.get_closest_marker("egress_allow")
    return None if mark is None else ",".join(mark.args)


@pytest.fixture()
def processes(
    request: pytest.FixtureRequest, tmp_path: Path, db: Engine, broker_url: str, database_url: str
) -> Iterator[Processes]:
    procs = Processes(tmp_path, broker_url, database_url)
    allowed = egress_allowed(request)
    if allowed is not None:
        procs.env["ORCH_EGRESS_ALLOW"] = allowed
    yield procs
    procs.stop_all()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(procs.logs())  # shown with the failure: the workers' own logs


class LiveApi:
    """The Flask app served over real HTTP on a free port, in a thread of the test process.

    `settings` defaults to the `ORCH_*` environment that conftest set up (e.g. pass
    `Settings.from_env().with_overrides(api_tokens=("t1",))` to serve with auth).
    """

    def __init__(self, settings: Any = None) -> None:
        from werkzeug.serving import make_server

        from api import create_app

        self.app = create_app(settings)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        # a short poll interval: `close` (server.shutdown) waits for one
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.http = requests.Session()

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.http.post(self.url + path, json=body, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.url + path, timeout=30, **kwargs)

    def wait_status(
        self,
        instance_id: str,
        statuses: tuple[str, ...] = ("completed", "failed", "cancelled"),
        timeout: float = 60,
    ) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            status = self.get(f"/api/v1/instances/{instance_id}/status").json()
            return status if status["status"] in statuses else None

        return wait_for(finished, timeout, f"instance {instance_id} to reach {statuses}", interval=0.1)

    def close(self) -> None:
        self.server.shutdown()
        self.app.extensions["orchestrator.engine"].dispose()


@pytest.fixture()
def live_api(
    request: pytest.FixtureRequest, db: Engine, broker_url: str, database_url: str
) -> Iterator[LiveApi]:
    allowed = egress_allowed(request)
    env = {**os.environ, "ORCH_BROKER_URL": broker_url, "ORCH_DATABASE_URL": database_url}
    if allowed is not None:
        env["ORCH_EGRESS_ALLOW"] = allowed
    settings = Settings.from_env(env)
    api = LiveApi(settings)
    yield api
    api.close()
