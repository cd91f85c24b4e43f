"""What a benchmark run measures and where: sizes per mode, repetitions and the services used."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from orchestrator.database_urls import MYSQL_DRIVERS, mysql_driver, url_problem, with_driver

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/orch_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
# RabbitMQ runs: a vhost of the benchmark's own (created with rabbitmqctl when missing, its queues
# deleted at the start of a run)
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/orch_bench"
BROKERS = ("redis", "amqp")
# what a RabbitMQ pass runs unless `--only` says otherwise: the chain and the fan-out, ours and raw
AMQP_SCENARIOS = ("sequential", "fan", "map")


@dataclass(frozen=True)
class Sizes:
    """Shapes of every scenario; `--quick` shrinks them for a smoke run."""

    repetitions: int
    chain: int
    fan: int
    instances: int
    scale_fans: tuple[int, ...]
    scale_chains: tuple[int, ...]
    recoveries: int
    backlog: int  # fan-out width of the backlog scenario (a queue far longer than the sweep's window)


FULL = Sizes(
    repetitions=5,
    chain=200,
    fan=1000,
    instances=500,
    scale_fans=(10, 100, 1000, 5000),
    scale_chains=(10, 100, 1000),
    recoveries=3,
    backlog=5000,
)
QUICK = Sizes(
    repetitions=1,
    chain=50,
    fan=100,
    instances=50,
    scale_fans=(10, 100, 500),
    scale_chains=(10, 100),
    recoveries=1,
    backlog=500,
)


@dataclass(frozen=True)
class BenchConfig:
    """Everything a run needs. The database is created and dropped by the run; only the Redis database
    named here is flushed (FLUSHDB), never the whole server."""

    sizes: Sizes
    mysql_url: str = DEFAULT_MYSQL_URL
    redis_url: str = DEFAULT_REDIS_URL
    amqp_url: str = DEFAULT_AMQP_URL
    # the passes of a run, in order; each starts its own API, workers and beat on its broker. Redis
    # stays in use on a RabbitMQ pass: the raw tasks record their times there, the raw chord keeps its
    # results there, and ours keeps its metrics there (ORCH_METRICS_URL), as on a Redis pass
    brokers: tuple[str, ...] = ("redis",)
    broker: str = "redis"  # the broker of the current pass
    concurrency: int = 2  # per worker, the same for ours and raw
    api_workers: int = 2
    api_threads: int = 8
    clients: int = 4  # concurrent HTTP clients creating instances
    scenarios: tuple[str, ...] = ()  # empty: all
    out: Path | None = ROOT / "docs" / "BENCHMARKS.md"
    log_dir: Path = field(default_factory=lambda: ROOT / "var" / "bench")
    quick: bool = False
    keep_database: bool = False
    strict: bool = False  # exit 1 when a target is missed (a benchmark reports; it does not fail by default)

    @property
    def broker_url(self) -> str:
        return self.amqp_url if self.broker == "amqp" else self.redis_url

    @property
    def driver(self) -> str:
        """The MySQL driver of the run (`pymysql`, `mysqldb`): the API's, the workers' and the bench's."""
        return mysql_driver(self.mysql_url) or make_url(self.mysql_url).get_backend_name()

    @staticmethod
    def from_env_defaults() -> dict[str, str]:
        return {
            "mysql_url": os.environ.get("BENCH_MYSQL_URL", DEFAULT_MYSQL_URL),
            "redis_url": os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
            "amqp_url": os.environ.get("BENCH_AMQP_URL", DEFAULT_AMQP_URL),
        }


def database_url(url: str, driver: str | None, setting: str = "BENCH_MYSQL_URL") -> str:
    """`url`, with its MySQL driver replaced by `driver` when one is given (`--driver`). Raises
    ValueError naming `setting` for a bare `mysql://` or a driver the product does not support."""
    if driver is not None:
        if driver not in MYSQL_DRIVERS:
            raise ValueError(f"--driver must be one of {', '.join(MYSQL_DRIVERS)}, got {driver!r}")
        url = with_driver(url, driver)
    problem = url_problem(url, setting)
    if problem:
        raise ValueError(problem)
    return url
