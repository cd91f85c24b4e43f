"""Small helpers for acceptance tests: post definitions, start instances, read rows and effects."""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

from sqlalchemy import Engine, select

from orchestrator.models import LogRow, NodeRow
from orchestrator.outcomes import Outcome
from tests.support import executors as test_executors


def define(api: Any, body: dict[str, Any]) -> None:
    response = api.post("/api/v1/definitions", body)
    assert response.status_code in (200, 201), response.text


def start(api: Any, workflow: str, data: dict[str, Any] | None = None, **options: Any) -> str:
    response = api.post("/api/v1/instances", {"workflow": workflow, "input": data or {}, **options})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def start_batch(api: Any, workflow: str, count: int) -> list[str]:
    """Create and start `count` instances of `workflow` in one batch request; their ids."""
    body = {"instances": [{"workflow": workflow, "input": {}} for _ in range(count)]}
    response = api.post("/api/v1/instances/batch", body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert all(r["status"] == 201 for r in results), results
    return [r["instance"]["id"] for r in results]


def nodes(engine: Engine, instance_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(select(NodeRow.__table__).where(NodeRow.instance_id == instance_id)).all()
    return {row.node_id: row for row in rows}


def runs(engine: Engine, instance_id: str | None = None, kind: str = "run") -> Counter[str]:
    """How often each node's executor really ran, from the executors' own side-effect table."""
    table = test_executors.effects
    statement = select(table.c.node_id).where(table.c.kind == kind)
    if instance_id is not None:
        statement = statement.where(table.c.instance_id == instance_id)
    with engine.connect() as conn:
        return Counter(conn.execute(statement).scalars())


def effects(engine: Engine, instance_id: str, kind: str) -> list[Any]:
    table = test_executors.effects
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(table)
                .where(table.c.instance_id == instance_id, table.c.kind == kind)
                .order_by(table.c.id)
            ).all()
        )


def log_messages(engine: Engine, instance_id: str, node_id: str | None = None) -> list[str]:
    statement = select(LogRow.message).where(LogRow.instance_id == instance_id).order_by(LogRow.id)
    if node_id is not None:
        statement = statement.where(LogRow.node_id == node_id)
    with engine.connect() as conn:
        return list(conn.execute(statement).scalars())


def subworkflow_pair(prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A one-node child workflow and a parent whose `sub` node runs it before its `after` node."""
    child = {
        "name": f"{prefix}-child",
        "version": "1.0.0",
        "nodes": [{"id": "only", "type": "task", "executor": "noop"}],
    }
    parent = {
        "name": f"{prefix}-parent",
        "version": "1.0.0",
        "nodes": [
            {"id": "sub", "type": "subworkflow", "config": {"workflow": {"name": child["name"]}}},
            {"id": "after", "type": "task", "executor": "noop", "dependsOn": ["sub"]},
        ],
    }
    return child, parent


def run_here(
    engine: Engine, instance_id: str, worker_id: str = "test-process", first: Outcome | None = None
) -> Any:
    """Run an instance's nodes in this process, as a worker would, but without sending a single
    message: what follows each commit (successors, `child_finished`, `notify`) is dropped except the
    successors, run here too. Starts with `first`'s dispatches (say, a retry's), else starts the
    instance. Returns the last outcome (its `finished`, if any)."""
    from orchestrator import scheduling
    from workers.runtime import run_attempt

    outcome = first if first is not None else scheduling.start(engine, instance_id)
    pending = deque(outcome.dispatches)
    while pending:
        d = pending.popleft()
        held = scheduling.claim(engine, d.instance_id, d.node_id, d.attempt, worker_id, d.facts())
        assert held is not None, f"the claim of {d.node_id} was refused"
        outcome = run_attempt(engine, held, 30.0)
        pending.extend(outcome.dispatches)
    return outcome
