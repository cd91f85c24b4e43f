"""`GET /metrics` over a real worker: instances by state, per-executor histograms recorded in Redis by the
worker's pool processes, retries, recoveries; and the worker's JSON log lines."""

from __future__ import annotations

import json
import math
import os
import socketserver
import threading
import time
from datetime import timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from orchestrator import metrics
from orchestrator.models import InstanceRow, NodeRow, utcnow
from orchestrator.settings import Settings
from tests.support.fixtures import REDIS_URL
from tests.support.services import wait_for

RETRYING = {
    "name": "metrics-retry",
    "version": "1.0.0",
    "nodes": [
        {"id": "first", "type": "task", "executor": "noop", "config": {"n": 1}},
        {
            "id": "flaky",
            "type": "task",
            "executor": "tests.flaky",
            "dependsOn": ["first"],
            "config": {"failures": 1},
            "retries": 2,
            "retryDelay": 10,
        },
        {"id": "last", "type": "task", "executor": "noop", "dependsOn": ["flaky"]},
    ],
}
ONE_NODE = {
    "name": "metrics-one",
    "version": "1.0.0",
    "nodes": [{"id": "only", "type": "task", "executor": "noop"}],
}


def scrape(api: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by (sample name, sorted labels)."""
    response = api.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_count_instances_node_attempts_and_retries(db, live_api, processes) -> None:
    worker = processes.worker("w1", ORCH_LOG_FORMAT="json")
    assert live_api.post("/api/v1/definitions", RETRYING).status_code == 201
    created = live_api.post("/api/v1/instances", {"workflow": "metrics-retry"})
    assert created.status_code == 201, created.text
    instance_id = created.json()["id"]
    assert live_api.wait_status(instance_id)["status"] == "completed"

    duration = metrics.NODE_DURATION.name
    wait = metrics.QUEUE_WAIT.name

    def recorded() -> dict[Any, float] | None:
        # the last attempt is recorded just after the commit that completes the instance
        samples = scrape(live_api)
        # each attempt's observation follows its own commit: wait for those of both executors
        counts = [value(samples, f"{duration}_count", executor=e) for e in ("noop", "tests.flaky")]
        return samples if counts == [2, 2] else None

    samples = wait_for(recorded, 20, "the last attempt in /metrics", interval=0.1)

    assert value(samples, "orchestrator_instances", status="completed") == 1
    assert value(samples, "orchestrator_instances", status="running") == 0
    assert value(samples, "orchestrator_nodes_active", status="running") == 0
    assert value(samples, "orchestrator_workers_alive") == 1
    assert value(samples, "orchestrator_metrics_store_up") == 1
    # one observation per attempt: flaky ran twice (a retried failure, then a success)
    assert value(samples, f"{duration}_count", executor="tests.flaky") == 2
    assert value(samples, f"{wait}_count", executor="noop") == 2
    assert value(samples, f"{wait}_count", executor="tests.flaky") == 2
    assert value(samples, "orchestrator_node_retries_total", executor="tests.flaky") == 1
    assert value(samples, "orchestrator_node_attempts_total", executor="tests.flaky", outcome="retried") == 1
    assert (
        value(samples, "orchestrator_node_attempts_total", executor="tests.flaky", outcome="completed") == 1
    )
    assert value(samples, "orchestrator_node_attempts_total", executor="noop", outcome="completed") == 2
    assert value(samples, "orchestrator_fencing_rejections_total") == 0
    assert value(samples, "orchestrator_recoveries_total") == 0
    for name in (duration, wait):
        for executor in ("noop", "tests.flaky"):
            buckets = [
                (float(dict(labels)["le"]), v)
                for (sample, labels), v in samples.items()
                if sample == f"{name}_bucket" and dict(labels)["executor"] == executor
            ]
            counts = [v for _, v in sorted(buckets)]
            assert counts == sorted(counts), f"{name} buckets are cumulative"
            assert sorted(buckets)[-1][0] == math.inf
            assert counts[-1] == value(samples, f"{name}_count", executor=executor)
            total = value(samples, f"{name}_sum", executor=executor)
            assert total is not None and 0 <= total < 30

    # the worker logs one JSON object per line, with the instance and node where known
    def node_lines() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in worker.log_lines() if line.startswith("{")]
        return [e for e in lines if e.get("instanceId") == instance_id and e.get("nodeId") == "flaky"]

    lines = wait_for(node_lines, 10, "JSON log lines about the flaky node")
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert any(e.get("taskId") == f"{instance_id}:flaky:1" for e in lines)


def test_a_recovery_sweep_hand_back_is_counted(db, live_api, processes) -> None:
    """A node whose worker went silent is handed back by the sweep (a task on the worker), counted once."""
    processes.worker("w1")
    assert live_api.post("/api/v1/definitions", ONE_NODE).status_code == 201
    created = live_api.post("/api/v1/instances", {"workflow": "metrics-one", "start": False})
    instance_id = created.json()["id"]
    stale = utcnow() - timedelta(minutes=10)
    with db.begin() as conn:  # as if a worker claimed attempt 1 and died ten minutes ago
        conn.execute(
            update(InstanceRow)
            .where(InstanceRow.id == instance_id)
            .values(status="running", started_at=stale)
        )
        conn.execute(
            update(NodeRow)
            .where(NodeRow.instance_id == instance_id)
            .values(status="running", attempt=1, worker_id="ghost", started_at=stale, heartbeat_at=stale)
        )
    from workers.app import app

    app.send_task("orchestrator.recover", queue="orchestrator")
    assert live_api.wait_status(instance_id)["status"] == "completed"

    def counted() -> dict[Any, float] | None:
        samples = scrape(live_api)
        # the attempt is added up in the worker and written within a flush interval of the count
        written = value(samples, f"{metrics.NODE_DURATION.name}_count", executor="noop") is not None
        return samples if written and value(samples, "orchestrator_recoveries_total") == 1 else None

    samples = wait_for(counted, 20, "the hand-back and the attempt in /metrics", interval=0.1)
    assert value(samples, f"{metrics.NODE_DURATION.name}_count", executor="noop") == 1


def test_a_shutdown_hand_back_is_counted(db, live_api, processes) -> None:
    """SIGTERM while a node runs: it sees should_stop, is handed back, and the count shows it."""
    worker = processes.worker("w1")
    # its gate never opens: the node is running when the worker is stopped, and heeds should_stop
    held = {**ONE_NODE["nodes"][0], "executor": "tests.gated", "config": {"gate": "never"}}
    body = {**ONE_NODE, "name": "metrics-long", "nodes": [held]}
    assert live_api.post("/api/v1/definitions", body).status_code == 201
    instance_id = live_api.post("/api/v1/instances", {"workflow": "metrics-long"}).json()["id"]

    def running() -> bool:
        nodes = live_api.get(f"/api/v1/instances/{instance_id}/nodes").json()["nodes"]
        return nodes[0]["status"] == "running"

    wait_for(running, 20, "the node to run")
    worker.stop(grace=20)

    def counted() -> dict[Any, float] | None:
        samples = scrape(live_api)
        return samples if value(samples, "orchestrator_shutdown_handbacks_total") == 1 else None

    wait_for(counted, 10, "the shutdown hand-back in /metrics", interval=0.1)
    nodes = live_api.get(f"/api/v1/instances/{instance_id}/nodes").json()["nodes"]
    assert (nodes[0]["status"], nodes[0]["attempt"]) == ("queued", 2)


class HangingUp(socketserver.TCPServer):
    """A listener on a free loopback port that counts the connections it accepts and closes each at
    once: a client sees its store go away without waiting for any timeout."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), socketserver.BaseRequestHandler)  # handles nothing
        self.accepted = 0
        self.url = f"redis://127.0.0.1:{self.server_address[1]}/0"

    def process_request(self, request: Any, client_address: Any) -> None:
        self.accepted += 1  # counted before the close the client waits for
        self.shutdown_request(request)


def test_recording_never_fails_the_node_path_when_redis_is_down(db, monkeypatch) -> None:
    from workers import observe

    with HangingUp() as store:
        threading.Thread(target=store.serve_forever, args=(0.05,), daemon=True).start()
        try:
            client = metrics.connect(store.url)
            assert client.get_retry().get_retries() == 0  # a refused connection is not retried either
            monkeypatch.setattr(observe, "_client", client)
            monkeypatch.setattr(observe, "_client_pid", os.getpid())
            monkeypatch.setattr(observe, "_skip_until", 0.0)

            observe.fencing_rejected()  # raises nothing, tries once (no retries with backoff), backs off
            assert store.accepted == 1
            assert observe._skip_until > time.monotonic()
            observe.fencing_rejected()  # skipped while backing off: no connection attempt at all
            assert store.accepted == 1
        finally:
            store.shutdown()


def test_a_scrape_survives_a_metrics_store_that_is_down(db) -> None:
    from api import create_app
    from orchestrator.settings import Settings
    from workers.app import use_broker

    app = create_app(Settings.from_env().with_overrides(broker_url="redis://127.0.0.1:1/0"))
    try:
        response = app.test_client().get("/metrics")
        assert response.status_code == 200
        text = response.get_data(as_text=True)
        assert "orchestrator_metrics_store_up 0.0" in text
        assert 'orchestrator_instances{status="completed"} 0.0' in text
    finally:
        use_broker(REDIS_URL)  # the app pointed this process's sender at the dead broker
        app.extensions["orchestrator.engine"].dispose()


def test_the_store_is_the_brokers_redis_or_none() -> None:
    assert metrics.store_url("redis://redis:6379/0") == "redis://redis:6379/0"
    assert metrics.store_url("rediss://h:6380/1") == "rediss://h:6380/1"
    assert metrics.store_url("redis+socket:///var/run/redis.sock") == "unix:///var/run/redis.sock"
    assert metrics.store_url("amqp://guest@rabbit//") is None


def test_on_rabbitmq_the_store_is_the_redis_that_orch_metrics_url_names() -> None:
    env = {"ORCH_BROKER_URL": "amqp://guest@rabbit//", "ORCH_METRICS_URL": "redis://r:6379/1"}
    settings = Settings.from_env(env)
    assert metrics.store_url(settings.broker_url, settings.metrics_url) == "redis://r:6379/1"
    assert metrics.store_url("redis://redis:6379/0", "redis://other:6379/2") == "redis://other:6379/2"
