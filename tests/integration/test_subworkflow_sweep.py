"""The sweep's view of sub-workflow nodes, on MariaDB and on SQLite (the `orchestrator dev` profile):
a node whose attempt has no child is handed back once its claim is a heartbeat timeout old; a node
whose child runs is left alone; a child that ended without its parent node hearing of it is reported."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, update

from orchestrator import catalog, children, recovery, scheduling
from orchestrator.db import make_engine
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.migrate import upgrade
from orchestrator.models import InstanceRow, NodeRow, utcnow
from orchestrator.states import InstanceStatus

CHILD = {
    "name": "sweep-child",
    "version": "1.0.0",
    "nodes": [{"id": "only", "type": "task", "executor": "noop"}],
}
PARENT = {
    "name": "sweep-parent",
    "version": "1.0.0",
    "nodes": [{"id": "sub", "type": "subworkflow", "config": {"workflow": {"name": "sweep-child"}}}],
}
TIMEOUT = 3.0


@pytest.fixture(params=["mysql", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    if request.param == "mysql":
        yield request.getfixturevalue("db")
        return
    url = f"sqlite:///{tmp_path / 'orchestrator.sqlite3'}"
    upgrade(url)
    sqlite = make_engine(url)
    yield sqlite
    sqlite.dispose()


def _claimed_sub(engine: Engine) -> str:
    catalog.save_definition(engine, CHILD)
    catalog.save_definition(engine, PARENT)
    parent_id = create_instance(engine, InstanceRequest("sweep-parent", start=False)).instance_id
    (d,) = scheduling.start(engine, parent_id).dispatches
    assert scheduling.claim(engine, parent_id, "sub", d.attempt, "gone-worker", d.facts()) is not None
    return parent_id


def _age(engine: Engine, table: type, seconds: float, column: str, **where: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(table)
            .where(*(getattr(table, k) == v for k, v in where.items()))
            .values({column: utcnow() - timedelta(seconds=seconds)})
        )


def _child(engine: Engine, parent_id: str, attempt: int) -> str:
    request = InstanceRequest(
        "sweep-child",
        parent_instance_id=parent_id,
        parent_node_id="sub",
        external_id=children.child_key(parent_id, "sub", attempt),
        start=False,
    )
    return create_instance(engine, request).instance_id


def test_a_sub_workflow_node_without_a_child_is_handed_back_only_once_its_claim_is_old(engine):
    parent_id = _claimed_sub(engine)
    assert recovery.sweep(engine, TIMEOUT).handed_back == 0  # just claimed: its worker may be creating it
    _age(engine, NodeRow, TIMEOUT + 1, "heartbeat_at", instance_id=parent_id)
    report = recovery.sweep(engine, TIMEOUT)
    assert report.handed_back == 1
    assert [(d.node_id, d.attempt) for d in report.dispatches] == [("sub", 2)]


def test_a_sub_workflow_node_whose_child_exists_is_left_to_its_child(engine):
    parent_id = _claimed_sub(engine)
    _child(engine, parent_id, 1)
    _age(engine, NodeRow, TIMEOUT + 1, "heartbeat_at", instance_id=parent_id)
    report = recovery.sweep(engine, TIMEOUT)
    assert report.handed_back == 0 and report.finished == []


def test_a_child_of_an_earlier_attempt_does_not_count_for_the_current_one(engine):
    parent_id = _claimed_sub(engine)
    _child(engine, parent_id, 7)  # another attempt's child (the node runs attempt 1)
    _age(engine, NodeRow, TIMEOUT + 1, "heartbeat_at", instance_id=parent_id)
    assert recovery.sweep(engine, TIMEOUT).handed_back == 1


def test_a_child_that_ended_unheard_is_reported_once_it_is_old_enough(engine):
    parent_id = _claimed_sub(engine)
    child_id = _child(engine, parent_id, 1)
    with engine.begin() as conn:
        conn.execute(
            update(InstanceRow)
            .where(InstanceRow.id == child_id)
            .values(status=InstanceStatus.COMPLETED.value, finished_at=utcnow())
        )
    assert recovery.unreported_children(engine, TIMEOUT) == []  # its own report may be on its way
    _age(engine, InstanceRow, TIMEOUT + 1, "finished_at", id=child_id)
    (finished,) = recovery.sweep(engine, TIMEOUT).finished
    assert (finished.instance_id, finished.parent_instance_id, finished.parent_node_id) == (
        child_id,
        parent_id,
        "sub",
    )
    assert finished.status == "completed" and finished.callback_url is None
