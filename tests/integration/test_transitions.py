"""The transition tables against the real database: every allowed edge moves, forbidden edges do not,
and two connections racing on one compare-and-set produce exactly one winner."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import insert, select

from orchestrator import catalog
from orchestrator.models import InstanceRow, NodeRow, utcnow
from orchestrator.states import (
    INSTANCE_TRANSITIONS,
    NODE_TRANSITIONS,
    InstanceStatus,
    NodeStatus,
)
from orchestrator.transitions import move_instance, move_node

DEFINITION = {
    "name": "one-node",
    "version": "1.0.0",
    "nodes": [{"id": "a", "type": "task", "executor": "noop"}],
}


def _instance(engine, status: str) -> str:
    stored, _ = catalog.save_definition(engine, DEFINITION)
    instance_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            insert(InstanceRow).values(
                id=instance_id,
                definition_id=stored.id,
                workflow_name="one-node",
                workflow_version="1.0.0",
                status=status,
                input={},
                priority="normal",
                tags={},
                unfinished_sinks=1,
                total_nodes=1,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
    return instance_id


def _node(engine, status: str, attempt: int = 1) -> int:
    instance_id = _instance(engine, "running")
    with engine.begin() as conn:
        conn.execute(
            insert(NodeRow).values(
                instance_id=instance_id,
                node_id="a",
                executor="noop",
                queue="default",
                status=status,
                attempt=attempt,
                pending_deps=0,
                failures=0,
                handbacks=0,
                updated_at=utcnow(),
            )
        )
        return conn.execute(select(NodeRow.id).where(NodeRow.instance_id == instance_id)).scalar_one()


def _status(engine, table, key, value):
    with engine.connect() as conn:
        return conn.execute(select(table.status).where(key == value)).scalar_one()


INSTANCE_EDGES = [(s, t) for s, targets in INSTANCE_TRANSITIONS.items() for t in sorted(targets)]
NODE_EDGES = [(s, t) for s, targets in NODE_TRANSITIONS.items() for t in sorted(targets)]


@pytest.mark.parametrize(("source", "target"), INSTANCE_EDGES, ids=[f"{s}->{t}" for s, t in INSTANCE_EDGES])
def test_every_allowed_instance_transition_moves(db, source, target):
    instance_id = _instance(db, source.value)
    with db.begin() as conn:
        assert move_instance(conn, instance_id, target, sources=[source])
    assert _status(db, InstanceRow, InstanceRow.id, instance_id) == target.value


@pytest.mark.parametrize("source", list(InstanceStatus))
def test_a_forbidden_instance_transition_per_state_is_refused(db, source):
    forbidden = next(t for t in InstanceStatus if t not in INSTANCE_TRANSITIONS[source] and t != source)
    instance_id = _instance(db, source.value)
    with db.begin() as conn, pytest.raises(ValueError, match="not in the table"):
        move_instance(conn, instance_id, forbidden, sources=[source])
    # and with the table's own sources, the guarded UPDATE does not match this row's state
    with db.begin() as conn:
        assert not move_instance(conn, instance_id, forbidden)
    assert _status(db, InstanceRow, InstanceRow.id, instance_id) == source.value


@pytest.mark.parametrize(("source", "target"), NODE_EDGES, ids=[f"{s}->{t}" for s, t in NODE_EDGES])
def test_every_allowed_node_transition_moves(db, source, target):
    row_id = _node(db, source.value)
    with db.begin() as conn:
        assert move_node(conn, row_id, target, sources=[source], fence=1)
    assert _status(db, NodeRow, NodeRow.id, row_id) == target.value


@pytest.mark.parametrize("source", list(NodeStatus))
def test_a_forbidden_node_transition_per_state_is_refused(db, source):
    forbidden = next(t for t in NodeStatus if t not in NODE_TRANSITIONS[source] and t != source)
    row_id = _node(db, source.value)
    with db.begin() as conn, pytest.raises(ValueError, match="not in the table"):
        move_node(conn, row_id, forbidden, sources=[source])
    assert _status(db, NodeRow, NodeRow.id, row_id) == source.value


def test_a_stale_attempt_cannot_move_the_node(db):
    row_id = _node(db, "running", attempt=2)
    with db.begin() as conn:
        assert not move_node(conn, row_id, NodeStatus.COMPLETED, sources=[NodeStatus.RUNNING], fence=1)
    assert _status(db, NodeRow, NodeRow.id, row_id) == "running"


def _race_once(engine, row_id: int) -> list[bool]:
    barrier = threading.Barrier(2)
    results: list[bool] = []

    def claim(worker: str) -> None:
        with engine.begin() as conn:
            barrier.wait()  # both transactions are open before either updates
            won = move_node(
                conn, row_id, NodeStatus.RUNNING, sources=[NodeStatus.QUEUED], fence=1, worker_id=worker
            )
            results.append(won)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_two_connections_racing_on_one_claim_produce_exactly_one_winner(db):
    for _ in range(20):
        row_id = _node(db, "queued")
        assert sorted(_race_once(db, row_id)) == [False, True]
        assert _status(db, NodeRow, NodeRow.id, row_id) == "running"
