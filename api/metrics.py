"""`GET /metrics`: Prometheus text, collected at scrape time.

Instance counts come from one GROUP BY, workers from the `workers` table, and the per-node histograms
and counters from the Redis store that every worker adds to (`orchestrator/metrics.py`): the API
never keeps counts of its own, so any number of gunicorn processes answer the same.

`init_app` also installs the `/ui` pages and the process's log format (`ORCH_LOG_FORMAT`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from orchestrator import limit_overrides, limit_report, logging_setup, metrics, workers_registry
from orchestrator.models import InstanceRow, NodeRow
from orchestrator.settings import Settings
from orchestrator.states import InstanceStatus, NodeStatus

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)
_REGISTRY = "orchestrator.metrics_registry"
_ACTIVE_NODE = (NodeStatus.QUEUED.value, NodeStatus.RUNNING.value)


class OrchestratorCollector(Collector):
    """Reads the database and the metrics store on every scrape; a store that is down yields no
    per-node series (and `orchestrator_metrics_store_up 0`) instead of a failed scrape."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self._store_url = metrics.store_url(settings.broker_url, settings.metrics_url)
        self._client: Any = None

    def collect(self) -> Iterator[Metric]:
        yield from self._database()
        yield from self._store()

    def _database(self) -> Iterator[Metric]:
        with self._engine.connect() as conn:
            instances = dict(
                conn.execute(select(InstanceRow.status, func.count()).group_by(InstanceRow.status)).all()
            )
            nodes = dict(
                conn.execute(
                    select(NodeRow.status, func.count())
                    .where(NodeRow.status.in_(_ACTIVE_NODE))
                    .group_by(NodeRow.status)
                ).all()
            )
        by_instance = GaugeMetricFamily(
            f"{metrics.PREFIX}_instances", "Workflow instances by state", labels=["status"]
        )
        for state in InstanceStatus:
            by_instance.add_metric([state.value], instances.get(state.value, 0))
        yield by_instance
        active = GaugeMetricFamily(
            f"{metrics.PREFIX}_nodes_active", "Nodes queued or running now", labels=["status"]
        )
        for name in _ACTIVE_NODE:
            active.add_metric([name], nodes.get(name, 0))
        yield active
        workers = workers_registry.list_workers(self._engine, self._settings.heartbeat_timeout)
        yield GaugeMetricFamily(
            f"{metrics.PREFIX}_workers_alive",
            "Workers with a heartbeat within ORCH_HEARTBEAT_TIMEOUT",
            value=sum(1 for w in workers if w["alive"]),
        )
        seen = GaugeMetricFamily(f"{metrics.PREFIX}_workers", "Workers seen, by status", labels=["status"])
        for name in ("active", "shutting_down", "gone"):
            seen.add_metric([name], sum(1 for w in workers if w["status"] == name))
        yield seen
        yield from _limits(self._engine)

    def _read_store(self) -> metrics.Snapshot | None:
        if self._store_url is None:
            return None
        try:
            if self._client is None:
                self._client = metrics.connect(self._store_url, timeout=2.0)
            return metrics.read(self._client)
        except Exception as exc:
            log.warning("could not read the metrics store: %s", exc)
            return None

    def _store(self) -> Iterator[Metric]:
        snapshot = self._read_store()
        yield GaugeMetricFamily(
            f"{metrics.PREFIX}_metrics_store_up",
            "1 when the Redis store of per-node metrics answered this scrape",
            value=0 if snapshot is None else 1,
        )
        snapshot = snapshot or metrics.Snapshot()
        for histogram in metrics.HISTOGRAMS:
            observed = HistogramMetricFamily(histogram.name, histogram.help, labels=[histogram.label])
            for label, data in snapshot.histograms.get(histogram.name, {}).items():
                observed.add_metric([label], data.buckets, data.sum)
            yield observed
        for counter in metrics.COUNTERS:
            counted = CounterMetricFamily(counter.name, counter.help, labels=list(counter.labels))
            series = snapshot.counters.get(counter.name, {})
            if not counter.labels and not series:
                series = {(): 0.0}  # an unlabelled counter is always present
            for labels, value in sorted(series.items()):
                counted.add_metric(list(labels), value)
            yield counted


def _limits(engine: Engine) -> Iterator[Metric]:
    """Each limit's slots in use (a rate: tokens of its burst taken) and what waits for it."""
    in_use = GaugeMetricFamily(
        f"{metrics.PREFIX}_limit_in_use",
        "Slots of a limit in use (a rate: burst tokens taken)",
        labels=["limit", "kind"],
    )
    waiting = GaugeMetricFamily(
        f"{metrics.PREFIX}_limit_waiting", "Nodes or instances waiting for a limit", labels=["limit", "kind"]
    )
    limit_overrides.refresh_if_stale(engine)  # the executors' limits set through the API, as committed
    for entry in limit_report.report(engine):
        in_use.add_metric([entry["name"], entry["kind"]], entry["inUse"])
        waiting.add_metric([entry["name"], entry["kind"]], entry["waiting"])
    yield in_use
    yield waiting


@bp.get("/metrics")
def scrape() -> Response:
    registry: CollectorRegistry = current_app.extensions[_REGISTRY]
    # the text format, or OpenMetrics when the scraper asks for it
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(registry), content_type=content_type)


def init_app(app: Flask) -> None:
    """Install the operator-facing parts: `/metrics`, the `/ui` pages and the log format."""
    from api import ui

    settings: Settings = app.extensions["orchestrator.settings"]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OrchestratorCollector(app.extensions["orchestrator.engine"], settings))
    app.extensions[_REGISTRY] = registry
    app.register_blueprint(bp)
    app.register_blueprint(ui.bp)
    logging_setup.configure(settings.log_format, loggers=("gunicorn.error", "gunicorn.access"))
