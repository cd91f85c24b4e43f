"""Cluster-wide metrics: their names, buckets and Redis keys, and the helpers that record and read them.

Nodes run in many processes (Celery prefork children on many hosts), so per-node observations are
aggregated in Redis rather than in process memory: each process adds up its finished attempts in a
`Tally` and writes the sums to a few hash fields in one pipelined round trip every half second or so
(not one round trip per node), and the API's `/metrics` reads them back at scrape time. Histograms store
per-bucket counts (not cumulative), a sum and a count per label set; the reader makes them cumulative.

The helpers take anything with redis-py's interface (`pipeline`, `hgetall`); `connect` makes such a
client, importing redis-py only then. This module imports no Celery or Flask code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

PREFIX = "orchestrator"
# Every Redis key of the metrics store, in one place; all start with KEY_PREFIX.
KEY_PREFIX = "orch:metrics:"
KEY_NODE_DURATION = f"{KEY_PREFIX}node_duration_seconds"
KEY_QUEUE_WAIT = f"{KEY_PREFIX}node_queue_wait_seconds"
KEY_COUNTERS = f"{KEY_PREFIX}counters"
KEY_SCHEDULE_LAG = f"{KEY_PREFIX}schedule_lag_seconds"
KEYS = (KEY_NODE_DURATION, KEY_QUEUE_WAIT, KEY_COUNTERS, KEY_SCHEDULE_LAG)

# label values are joined with this separator in hash field names (executor names never contain it)
SEP = "|"

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


@dataclass(frozen=True)
class Histogram:
    name: str
    help: str
    key: str
    buckets: tuple[float, ...]
    label: str = "executor"


@dataclass(frozen=True)
class Counter:
    name: str
    help: str
    labels: tuple[str, ...] = ()


NODE_DURATION = Histogram(
    f"{PREFIX}_node_duration_seconds",
    "Time an executor call took, per attempt",
    KEY_NODE_DURATION,
    DURATION_BUCKETS,
)
QUEUE_WAIT = Histogram(
    f"{PREFIX}_node_queue_wait_seconds",
    "Time from a node's message being due to a worker starting it, per attempt",
    KEY_QUEUE_WAIT,
    WAIT_BUCKETS,
)
# labelled by the schedule's `catchup` (3 values), not by its name: schedules are made by users,
# and a label per schedule would grow the series without bound
SCHEDULE_LAG = Histogram(
    f"{PREFIX}_schedule_lag_seconds",
    "Time from a schedule's fire time to the creation of its instance (whose start is sent at once)",
    KEY_SCHEDULE_LAG,
    WAIT_BUCKETS,
    label="catchup",
)
HISTOGRAMS = (NODE_DURATION, QUEUE_WAIT, SCHEDULE_LAG)

NODE_ATTEMPTS = Counter(
    f"{PREFIX}_node_attempts",
    "Finished executor attempts by outcome (completed, retried, failed)",
    ("executor", "outcome"),
)
RETRIES = Counter(f"{PREFIX}_node_retries", "Failed attempts that were queued again", ("executor",))
FENCING_REJECTIONS = Counter(
    f"{PREFIX}_fencing_rejections", "Results dropped because the attempt no longer held its node"
)
RECOVERIES = Counter(
    f"{PREFIX}_recoveries", "Running nodes handed back by the recovery sweep (lease expired, worker gone)"
)
RESENDS = Counter(f"{PREFIX}_recovery_resends", "Queued nodes whose lost message the sweep sent again")
RECOVERY_STARTS = Counter(
    f"{PREFIX}_recovery_starts", "Pending instances the sweep started (their schedule message was lost)"
)
INSTANCE_TIMEOUTS = Counter(f"{PREFIX}_instance_timeouts", "Instances failed by their workflow timeout")
WORKERS_GONE = Counter(f"{PREFIX}_workers_marked_gone", "Workers the sweep marked gone (no heartbeat)")
SHUTDOWN_HANDBACKS = Counter(
    f"{PREFIX}_shutdown_handbacks", "Running nodes handed back by a worker that was stopping or had restarted"
)
SCHEDULE_FIRES = Counter(
    f"{PREFIX}_schedule_fires",
    "Fire times of schedules by outcome: fired (instance created), skipped (overlap), missed "
    "(dropped by catchup), failed (no instance could be created)",
    ("outcome",),
)
COUNTERS = (
    SCHEDULE_FIRES,
    NODE_ATTEMPTS,
    RETRIES,
    FENCING_REJECTIONS,
    RECOVERIES,
    RESENDS,
    RECOVERY_STARTS,
    INSTANCE_TIMEOUTS,
    WORKERS_GONE,
    SHUTDOWN_HANDBACKS,
)

# Outcomes of an attempt, as recorded by `Tally.attempt`.
COMPLETED, RETRIED, FAILED = "completed", "retried", "failed"


def bucket_label(bound: float) -> str:
    """A bucket bound as Prometheus writes it (`0.5`, `1.0`, `+Inf`)."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _bucket_for(histogram: Histogram, value: float) -> str:
    for bound in histogram.buckets:
        if value <= bound:
            return bucket_label(bound)
    return bucket_label(math.inf)


def _counter_field(counter: Counter, values: Iterable[str]) -> str:
    return SEP.join([counter.name, *values])


class Tally:
    """Finished attempts added up in memory until `flush` writes the sums in one round trip.

    Not thread-safe by itself: the caller serializes `attempt`, `flush` and `pending`.
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._sums: dict[tuple[str, str], float] = {}

    def _observe(self, histogram: Histogram, label: str, value: float) -> None:
        value = max(0.0, float(value))
        self._count(histogram.key, f"{label}{SEP}{_bucket_for(histogram, value)}")
        self._count(histogram.key, f"{label}{SEP}count")
        total = (histogram.key, f"{label}{SEP}sum")
        self._sums[total] = self._sums.get(total, 0.0) + value

    def _count(self, key: str, name: str, amount: int = 1) -> None:
        self._counts[(key, name)] = self._counts.get((key, name), 0) + amount

    def attempt(self, executor: str, outcome: str, duration_s: float, queue_wait_s: float | None) -> None:
        """One finished attempt of `executor`: its duration, its queue wait and its outcome."""
        self._observe(NODE_DURATION, executor, duration_s)
        if queue_wait_s is not None:
            self._observe(QUEUE_WAIT, executor, queue_wait_s)
        self._count(KEY_COUNTERS, _counter_field(NODE_ATTEMPTS, (executor, outcome)))
        if outcome == RETRIED:
            self._count(KEY_COUNTERS, _counter_field(RETRIES, (executor,)))

    def schedule_pass(self, outcomes: Mapping[str, int], lags: Iterable[tuple[str, float]]) -> None:
        """One pass of the schedules' firing: fire times per outcome, and each created instance's lag
        (catchup of its schedule, seconds)."""
        for outcome, amount in outcomes.items():
            if amount:
                self._count(KEY_COUNTERS, _counter_field(SCHEDULE_FIRES, (outcome,)), amount)
        for catchup, lag in lags:
            self._observe(SCHEDULE_LAG, catchup, lag)

    def pending(self) -> bool:
        return bool(self._counts or self._sums)

    def flush(self, client: Any) -> None:
        """Write everything added so far and start from zero. Raises whatever the client raises; the
        sums are dropped then (metrics are best effort, and a retry could count them twice)."""
        counts, sums = self._counts, self._sums
        self._counts, self._sums = {}, {}
        if not counts and not sums:
            return
        pipe = client.pipeline(transaction=False)
        for (key, name), amount in counts.items():
            pipe.hincrby(key, name, amount)
        for (key, name), total in sums.items():
            pipe.hincrbyfloat(key, name, total)
        pipe.execute()


def increment(client: Any, counters: Mapping[Counter, int], labels: tuple[str, ...] = ()) -> None:
    """Add to several counters (with the same label values) in one round trip; zeros are skipped."""
    pipe = client.pipeline(transaction=False)
    for counter, amount in counters.items():
        if amount:
            pipe.hincrby(KEY_COUNTERS, _counter_field(counter, labels), int(amount))
    pipe.execute()


@dataclass
class HistogramData:
    """One label set of a histogram: cumulative `(le, count)` pairs ending in `+Inf`, sum and count."""

    buckets: list[tuple[str, float]]
    sum: float
    count: float


@dataclass
class Snapshot:
    histograms: dict[str, dict[str, HistogramData]] = field(default_factory=dict)
    counters: dict[str, dict[tuple[str, ...], float]] = field(default_factory=dict)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _histogram(histogram: Histogram, raw: Mapping[Any, Any]) -> dict[str, HistogramData]:
    per_label: dict[str, dict[str, float]] = {}
    for key, value in raw.items():
        label, _, part = _text(key).rpartition(SEP)
        per_label.setdefault(label, {})[part] = float(_text(value))
    result = {}
    bounds = [bucket_label(b) for b in (*histogram.buckets, math.inf)]
    for label, parts in sorted(per_label.items()):
        running = 0.0
        cumulative = []
        for bound in bounds:
            running += parts.get(bound, 0.0)
            cumulative.append((bound, running))
        result[label] = HistogramData(cumulative, parts.get("sum", 0.0), parts.get("count", running))
    return result


def read(client: Any) -> Snapshot:
    """Everything recorded so far, in one round trip. Raises whatever the client raises."""
    pipe = client.pipeline(transaction=False)
    for key in KEYS:
        pipe.hgetall(key)
    raw = dict(zip(KEYS, pipe.execute(), strict=True))
    snapshot = Snapshot()
    for histogram in HISTOGRAMS:
        snapshot.histograms[histogram.name] = _histogram(histogram, raw[histogram.key] or {})
    names = {c.name: c for c in COUNTERS}
    for key, value in (raw[KEY_COUNTERS] or {}).items():
        name, *labels = _text(key).split(SEP)
        counter = names.get(name)
        if counter is not None and len(labels) == len(counter.labels):
            snapshot.counters.setdefault(name, {})[tuple(labels)] = float(_text(value))
    return snapshot


def clear(client: Any) -> None:
    """Forget everything recorded (tests; an operator resetting the store)."""
    client.delete(*KEYS)


def store_url(broker_url: str, metrics_url: str | None = None) -> str | None:
    """The Redis URL metrics are kept at: `metrics_url` (ORCH_METRICS_URL) when set, else the broker's
    when the broker is Redis; else None (no store: a RabbitMQ deployment without ORCH_METRICS_URL has
    no per-node metrics, only those /metrics reads from the database)."""
    if metrics_url:
        return metrics_url
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        return broker_url
    if broker_url.startswith("redis+socket://"):
        return "unix://" + broker_url.removeprefix("redis+socket://")
    return None


def connect(url: str, timeout: float = 1.0) -> Any:
    """A redis-py client for the store that fails fast: short socket timeouts and no retries (redis-py
    would otherwise retry a refused connection with backoff for seconds, on the node path)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )
