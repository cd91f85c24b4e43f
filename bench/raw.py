"""Driving the raw Celery baseline from the benchmark process: chain, chord and burst of no-ops.

Each task records `time.time()` into a Redis list when it runs, so hop latency and end times come
from the workers, not from polling.
"""

from __future__ import annotations

import contextlib
import gc
import time
import uuid
from dataclasses import dataclass

import redis
from celery import chain, chord

from bench import raw_app
from bench.processes import wait_for
from bench.stats import percentile


@dataclass(frozen=True)
class Timed:
    """One run: wall time from the first send to the last recorded task, and the hop gaps (s)."""

    total_s: float
    hops: list[float]


def _times(client: redis.Redis, key: str, count: int, timeout: float) -> list[float]:
    wait_for(lambda: client.llen(key) >= count, timeout, f"{count} raw tasks on {key}", interval=0.02)
    values = [float(v) for v in client.lrange(key, 0, -1)]
    client.delete(key)
    return values


def run_chain(client: redis.Redis, length: int, timeout: float = 300) -> Timed:
    """A Celery `chain` of `length` no-op tasks; hops are start-to-start gaps."""
    key = f"bench:raw:chain:{uuid.uuid4()}"
    started = time.time()
    chain(*(raw_app.hop.si(key) for _ in range(length))).apply_async()
    times = _times(client, key, length, timeout)
    return Timed(times[-1] - started, [b - a for a, b in zip(times, times[1:], strict=False)])


def run_chord(client: redis.Redis, width: int, timeout: float = 300) -> Timed:
    """1 -> `width` -> 1: a no-op, then a `chord` of `width` no-ops whose callback records the end."""
    key = f"bench:raw:chord:{uuid.uuid4()}"
    started = time.time()
    body = chord([raw_app.leaf.si() for _ in range(width)], raw_app.hop.si(key))
    chain(raw_app.hop.si(key), body).apply_async()
    times = _times(client, key, 2, timeout)
    _forget_pending_results()
    return Timed(times[-1] - started, [])


def _forget_pending_results() -> None:
    """Drop the result subscriptions `apply_async` left with the Redis backend (nobody waits on them):
    otherwise they are unsubscribed while the interpreter shuts down, which prints tracebacks."""
    backend = raw_app.app.backend
    with contextlib.suppress(AttributeError):
        for waiting in list(backend._pending_results.concrete.values()):  # task id -> {id: result}
            for pending in list(waiting.values()):
                backend.remove_pending_result(pending)
    gc.collect()  # result objects in reference cycles unsubscribe now, not at exit


def run_burst(client: redis.Redis, count: int, timeout: float = 300) -> Timed:
    """`count` independent no-op tasks sent as fast as one client can; done when all have run."""
    key = f"bench:raw:burst:{uuid.uuid4()}"
    started = time.time()
    with raw_app.app.producer_or_acquire() as producer:
        for _ in range(count):
            raw_app.hop.apply_async((key,), producer=producer)
    times = _times(client, key, count, timeout)
    return Timed(max(times) - started, [])


def hop_percentiles(timed: Timed) -> tuple[float, float]:
    """(p50, p99) hop latency in ms."""
    return percentile(timed.hops, 50) * 1000, percentile(timed.hops, 99) * 1000
