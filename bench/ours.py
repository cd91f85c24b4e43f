"""Driving the orchestrator as a client does: definitions and instances over HTTP, times from MySQL.

Node timings come from the `node_executions` rows (`started_at`, `finished_at`, written by the
workers); the end of an instance is its `finished_at`. Polling only detects the end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from sqlalchemy import Engine, bindparam, text

from bench.processes import wait_for

FINISHED = ("completed", "failed", "cancelled")


def epoch(value: datetime) -> float:
    """A naive-UTC MySQL timestamp as seconds since the epoch."""
    return value.replace(tzinfo=UTC).timestamp()


def chain_definition(length: int) -> dict[str, Any]:
    nodes = [
        {"id": f"n{i}", "type": "task", "executor": "noop", **({"dependsOn": [f"n{i - 1}"]} if i else {})}
        for i in range(length)
    ]
    return {"name": f"bench-chain-{length}", "version": "1.0.0", "nodes": nodes}


def fan_definition(width: int) -> dict[str, Any]:
    """1 -> `width` -> 1 of `noop` nodes: `source`, `leaf-*`, `join`."""
    leaves = [f"leaf-{i}" for i in range(width)]
    nodes = [
        {"id": "source", "type": "task", "executor": "noop"},
        *({"id": leaf, "type": "task", "executor": "noop", "dependsOn": ["source"]} for leaf in leaves),
        {"id": "join", "type": "task", "executor": "noop", "dependsOn": leaves},
    ]
    return {"name": f"bench-fan-{width}", "version": "1.0.0", "nodes": nodes}


def map_definition(width: int) -> dict[str, Any]:
    """1 -> map of `width` `noop` items -> 1: `source` outputs the list, `each` maps it, `join` reads it."""
    return {
        "name": f"bench-map-{width}",
        "version": "1.0.0",
        "nodes": [
            {"id": "source", "type": "task", "executor": "noop", "config": {"items": list(range(width))}},
            {
                "id": "each",
                "type": "map",
                "dependsOn": ["source"],
                "over": "${nodes.source.output.items}",
                "node": {"type": "task", "executor": "noop", "config": {"n": "${item}"}},
            },
            {"id": "join", "type": "task", "executor": "noop", "dependsOn": ["each"]},
        ],
    }


DIAMOND = {
    "name": "bench-diamond",
    "version": "1.0.0",
    "nodes": [
        {"id": "a", "type": "task", "executor": "noop"},
        {"id": "b", "type": "task", "executor": "noop", "dependsOn": ["a"]},
        {"id": "c", "type": "task", "executor": "noop", "dependsOn": ["a"]},
        {"id": "d", "type": "task", "executor": "noop", "dependsOn": ["b", "c"]},
    ],
}


@dataclass(frozen=True)
class InstanceRun:
    instance_id: str
    total_s: float  # from the POST to the instance's finished_at
    hops: list[float]  # start-to-start gaps of consecutive nodes, in start order (s)


@dataclass(frozen=True)
class ManyRun:
    total_s: float  # from the first POST to the last instance's finished_at
    create_latencies: list[float]  # per POST, s
    completed: int
    nodes: int


class Orchestrator:
    """An HTTP client of the API plus a read-only view of the database for timings."""

    def __init__(self, api_url: str, engine: Engine) -> None:
        self.api_url = api_url
        self.engine = engine
        self._local = threading.local()

    def _http(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def define(self, body: dict[str, Any]) -> None:
        response = self._http().post(f"{self.api_url}/api/v1/definitions", json=body, timeout=120)
        if response.status_code not in (200, 201):
            raise RuntimeError(f"defining {body['name']}: {response.status_code} {response.text[:500]}")

    def create(self, workflow: str) -> tuple[str, float]:
        """POST an instance; returns (id, request latency in s)."""
        began = time.perf_counter()
        response = self._http().post(
            f"{self.api_url}/api/v1/instances", json={"workflow": workflow}, timeout=120
        )
        latency = time.perf_counter() - began
        if response.status_code != 201:
            raise RuntimeError(f"creating {workflow}: {response.status_code} {response.text[:500]}")
        return str(response.json()["id"]), latency

    def _status(self, instance_id: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(
                text("SELECT status, finished_at FROM workflow_instances WHERE id = :id"), {"id": instance_id}
            ).one()

    def wait(self, instance_id: str, timeout: float) -> Any:
        def finished() -> Any:
            row = self._status(instance_id)
            return row if row.status in FINISHED else None

        row = wait_for(finished, timeout, f"instance {instance_id}", interval=0.05)
        if row.status != "completed":
            raise RuntimeError(f"instance {instance_id} ended {row.status}")
        return row

    def node_starts(self, instance_id: str) -> list[float]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT started_at FROM node_executions WHERE instance_id = :id ORDER BY started_at"),
                {"id": instance_id},
            ).scalars()
            return [epoch(value) for value in rows]

    def run(self, workflow: str, timeout: float = 600) -> InstanceRun:
        """Create one instance and wait for it; hops from the nodes' start times."""
        started = time.time()
        instance_id, _ = self.create(workflow)
        row = self.wait(instance_id, timeout)
        starts = self.node_starts(instance_id)
        hops = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        return InstanceRun(instance_id, epoch(row.finished_at) - started, hops)

    def many(self, workflow: str, count: int, clients: int, nodes_each: int, timeout: float = 600) -> ManyRun:
        """`count` instances created by `clients` concurrent HTTP clients; waits for all to finish."""
        started = time.time()
        with ThreadPoolExecutor(clients, thread_name_prefix="client") as pool:
            created = list(pool.map(lambda _: self.create(workflow), range(count)))
        ids = [instance_id for instance_id, _ in created]
        query = text(
            "SELECT COUNT(*) AS done, SUM(status = 'completed') AS ok, MAX(finished_at) AS last "
            "FROM workflow_instances WHERE id IN :ids AND status IN ('completed', 'failed', 'cancelled')"
        ).bindparams(bindparam("ids", expanding=True))

        def all_done() -> Any:
            with self.engine.connect() as conn:
                row = conn.execute(query, {"ids": ids}).one()
            return row if row.done == count else None

        row = wait_for(all_done, timeout, f"{count} instances of {workflow}", interval=0.2)
        return ManyRun(
            epoch(row.last) - started, [lat for _, lat in created], int(row.ok), count * nodes_each
        )

    def completions_per_node(self, instance_ids: Sequence[str]) -> dict[tuple[str, str], int]:
        """How often each node's completion was logged: every value must be 1 (committed once)."""
        query = text(
            "SELECT instance_id, node_id, COUNT(*) AS n FROM execution_logs "
            "WHERE instance_id IN :ids AND message = 'node completed' GROUP BY instance_id, node_id"
        ).bindparams(bindparam("ids", expanding=True))
        with self.engine.connect() as conn:
            return {
                (r.instance_id, r.node_id): int(r.n) for r in conn.execute(query, {"ids": list(instance_ids)})
            }
