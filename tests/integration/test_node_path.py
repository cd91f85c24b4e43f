"""The node path against MySQL, in one process and without Celery: what a claim and a completion
write, how few statements they take, and that the shortcuts keep the semantics (docs/BENCHMARKS.md)."""

from __future__ import annotations

import collections
import uuid
from typing import Any

import pymysql
import pytest
from sqlalchemy import Engine, select, text

from orchestrator import catalog, lifecycle, scheduling
from orchestrator.db import autocommit, make_engine
from orchestrator.definitions import parse_definition
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.models import InstanceRow, LogRow, NodeRow
from orchestrator.outcomes import Dispatch, Outcome
from tests.support.fixtures import MYSQL_URL
from workers.runtime import NodeRuntime, run_attempt

WORKER = "node-path-test"


def _definition(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": f"node-path-{uuid.uuid4().hex[:8]}", "version": "1.0.0", "nodes": nodes}


def _task(node_id: str, *deps: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "task", "executor": "noop", "dependsOn": list(deps), **extra}


def _start(engine: Engine, definition: dict[str, Any], **request: Any) -> tuple[str, list[Dispatch]]:
    catalog.save_definition(engine, definition)
    created = create_instance(engine, InstanceRequest(workflow=definition["name"], **request))
    return created.instance_id, scheduling.start(engine, created.instance_id).dispatches


def _run(engine: Engine, d: Dispatch) -> Outcome:
    held = scheduling.claim(engine, d.instance_id, d.node_id, d.attempt, WORKER, d.facts())
    assert held is not None, f"the claim of {d.node_id} was refused"
    return run_attempt(engine, held, 30.0)


def _run_all(engine: Engine, dispatches: list[Dispatch]) -> None:
    pending = collections.deque(dispatches)
    while pending:
        pending.extend(_run(engine, pending.popleft()).dispatches)


def _commands(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every command this process sends to MySQL from here on (statements, COMMIT, ROLLBACK, pings)."""
    sent: list[bytes] = []
    original = pymysql.connections.Connection._execute_command

    def counting(self: Any, command: int, sql: Any) -> Any:
        sent.append(sql if isinstance(sql, bytes) else str(sql).encode())
        return original(self, command, sql)

    monkeypatch.setattr(pymysql.connections.Connection, "_execute_command", counting)
    return sent


def _log_lines(engine: Engine, instance_id: str, node_id: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(LogRow.message, LogRow.created_at, LogRow.attempt, LogRow.worker_id)
                .where(LogRow.instance_id == instance_id, LogRow.node_id == node_id)
                .order_by(LogRow.created_at, LogRow.id)
            ).all()
        )


def _instance(engine: Engine, instance_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(InstanceRow.__table__).where(InstanceRow.id == instance_id)).one()


def test_a_claim_with_the_facts_its_message_carries_is_a_single_statement(db, monkeypatch):
    instance_id, (first,) = _start(db, _definition([_task("a")]))
    assert first.facts() is not None  # every dispatch carries them
    scheduling.claim(db, "warm-up", "a", 1, WORKER, first.facts())  # opens the pooled connection
    sent = _commands(monkeypatch)
    held = scheduling.claim(db, first.instance_id, first.node_id, first.attempt, WORKER, first.facts())
    # one UPDATE that commits as it runs: no COMMIT, no ROLLBACK, no read back
    assert len(sent) == 1 and sent[0].startswith(b"UPDATE node_executions"), sent
    assert held is not None and held.row_id == first.row_id and held.priority == "normal"
    with db.connect() as conn:
        status, worker = conn.execute(
            select(NodeRow.status, NodeRow.worker_id).where(NodeRow.id == first.row_id)
        ).one()
    assert (status, worker) == ("running", WORKER)
    # a second delivery of the same message loses: the compare-and-set is what decides
    assert (
        scheduling.claim(db, first.instance_id, first.node_id, first.attempt, "other", first.facts()) is None
    )


def test_a_message_without_facts_reads_them_back_and_claims_the_same(db):
    _, (first,) = _start(db, _definition([_task("a")]))
    held = scheduling.claim(db, first.instance_id, first.node_id, first.attempt, WORKER)
    assert held is not None
    assert (held.row_id, held.definition_id, held.workflow, held.priority) == (
        first.row_id,
        first.definition_id,
        first.workflow,
        first.priority,
    )


def test_the_running_line_is_written_by_the_completion_with_the_time_of_the_claim(db):
    instance_id, (first,) = _start(db, _definition([_task("a"), _task("b", "a")]))
    held = scheduling.claim(db, first.instance_id, "a", first.attempt, WORKER, first.facts())
    assert held is not None
    assert _log_lines(db, instance_id, "a") == []  # not written by the claim itself
    outcome = run_attempt(db, held, 30.0)
    lines = _log_lines(db, instance_id, "a")
    assert [line.message for line in lines] == ["node running", "node completed"]
    assert lines[0].created_at <= lines[1].created_at
    assert (lines[0].attempt, lines[0].worker_id) == (1, WORKER)
    with db.connect() as conn:
        started_at = conn.execute(select(NodeRow.started_at).where(NodeRow.id == held.row_id)).scalar_one()
    assert lines[0].created_at == started_at  # stamped when the node was claimed, not when written
    _run_all(db, outcome.dispatches)
    assert _instance(db, instance_id).status == "completed"


def test_a_node_still_running_at_its_first_heartbeat_gets_its_running_line_then(db):
    instance_id, (first,) = _start(db, _definition([_task("a")]))
    held = scheduling.claim(db, first.instance_id, "a", first.attempt, WORKER, first.facts())
    assert held is not None
    NodeRuntime(db, held, "noop", 30.0).beat()
    assert [line.message for line in _log_lines(db, instance_id, "a")] == ["node running"]
    run_attempt(db, held, 30.0)
    # written once: the completion does not write it again
    assert [line.message for line in _log_lines(db, instance_id, "a")] == ["node running", "node completed"]


def test_only_the_completion_of_a_sink_touches_the_instance_row(db):
    definition = _definition(
        [
            _task("source"),
            _task("left", "source"),
            _task("right", "source"),
            _task("join", "left", "right"),
            _task("tail", "source"),
        ]
    )
    instance_id, dispatches = _start(db, definition)
    assert _instance(db, instance_id).unfinished_sinks == 2  # join and tail
    untouched = _instance(db, instance_id).updated_at
    (source,) = dispatches
    released = _run(db, source).dispatches
    assert sorted(d.node_id for d in released) == ["left", "right", "tail"]
    left = next(d for d in released if d.node_id == "left")
    join = _run(db, left).dispatches
    assert join == []  # the join still waits for `right`
    assert _instance(db, instance_id).updated_at == untouched
    tail = next(d for d in released if d.node_id == "tail")
    assert _run(db, tail).finished is None
    row = _instance(db, instance_id)
    assert (row.unfinished_sinks, row.status) == (1, "running")
    right = next(d for d in released if d.node_id == "right")
    (join_dispatch,) = _run(db, right).dispatches
    assert _run(db, join_dispatch).finished is not None
    row = _instance(db, instance_id)
    assert (row.unfinished_sinks, row.status) == (0, "completed")


def test_a_node_released_while_its_instance_is_paused_is_sent_only_on_resume(db):
    instance_id, (first,) = _start(db, _definition([_task("a"), _task("b", "a"), _task("c", "a")]))
    held = scheduling.claim(db, first.instance_id, "a", first.attempt, WORKER, first.facts())
    assert held is not None
    lifecycle.pause(db, instance_id)
    assert run_attempt(db, held, 30.0).dispatches == []  # nothing is sent while paused...
    with db.connect() as conn:  # ...yet b and c are released: queued with their first attempt
        rows = conn.execute(
            select(NodeRow.node_id, NodeRow.status, NodeRow.attempt, NodeRow.pending_deps)
            .where(NodeRow.instance_id == instance_id, NodeRow.node_id != "a")
            .order_by(NodeRow.node_id)
        ).all()
    assert [tuple(r) for r in rows] == [("b", "queued", 1, 0), ("c", "queued", 1, 0)]
    resent = lifecycle.resume(db, instance_id).dispatches
    assert sorted((d.node_id, d.attempt) for d in resent) == [("b", 1), ("c", 1)]
    _run_all(db, resent)
    assert _instance(db, instance_id).status == "completed"


def test_a_node_reads_the_instance_input_only_when_it_uses_it(db):
    definition = _definition(
        [
            _task("plain"),
            _task("templated", "plain", config={"who": "${input.name}", "id": "${instance.externalId}"}),
        ]
    )
    definition["inputs"] = {"name": {"type": "string", "required": True}}
    spec = parse_definition(definition)
    assert not spec.node("plain").reads_instance
    assert spec.node("templated").reads_instance
    instance_id, dispatches = _start(
        db, definition, input={"name": "ada"}, external_id=f"ext-{uuid.uuid4().hex[:6]}"
    )
    _run_all(db, dispatches)
    with db.connect() as conn:
        output = conn.execute(
            select(NodeRow.output).where(NodeRow.instance_id == instance_id, NodeRow.node_id == "templated")
        ).scalar_one()
    assert output["who"] == "ada"
    assert output["id"].startswith("ext-")


def _node(engine: Engine, instance_id: str, node_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(NodeRow.status, NodeRow.attempt, NodeRow.worker_id, NodeRow.error).where(
                NodeRow.instance_id == instance_id, NodeRow.node_id == node_id
            )
        ).one()


def test_a_claim_whose_reads_fail_after_it_committed_is_undone(db, monkeypatch):
    instance_id, (first,) = _start(
        db, _definition([_task("a"), _task("b", "a", config={"x": "${nodes.a.output}"})])
    )
    (second,) = _run(db, first).dispatches

    def unreachable(*_: Any) -> Any:
        raise RuntimeError("the database went away")

    with monkeypatch.context() as patched:
        patched.setattr(scheduling, "_earlier_results", unreachable)
        with pytest.raises(RuntimeError, match="went away"):
            scheduling.claim(db, second.instance_id, second.node_id, second.attempt, WORKER, second.facts())
    # queued again for the same attempt, so the sweep's resend (or a redelivery) can claim it
    assert tuple(_node(db, instance_id, "b"))[:3] == ("queued", second.attempt, None)
    _run(db, second)
    assert _instance(db, instance_id).status == "completed"


def test_a_read_failing_after_the_claim_fails_the_attempt_instead_of_leaving_it_running(db, monkeypatch):
    definition = _definition([_task("a", config={"who": "${input.name}"})])
    definition["inputs"] = {"name": {"type": "string", "required": True}}
    instance_id, (first,) = _start(db, definition, input={"name": "ada"})
    held = scheduling.claim(db, first.instance_id, first.node_id, first.attempt, WORKER, first.facts())
    assert held is not None

    def unreachable(*_: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(scheduling, "instance_data", unreachable)
    run_attempt(db, held, 30.0)
    node = _node(db, instance_id, "a")
    assert node.status == "failed"
    assert "went away" in node.error["message"]
    assert _instance(db, instance_id).status == "failed"


def test_disposing_an_engine_closes_its_autocommit_connections_too():
    engine = make_engine(MYSQL_URL)
    with autocommit(engine) as conn:
        conn.execute(text("SELECT 1"))
        raw = conn.connection.dbapi_connection
    assert raw.open  # back in the sibling's pool, for the next claim
    engine.dispose()
    assert not raw.open
