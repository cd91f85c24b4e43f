"""The sweep's view of sub-workflow nodes, on MariaDB (also with a database collation other than the
connection's) and on SQLite (the `orchestrator dev` profile):
a node whose attempt has no child is handed back once its claim is a heartbeat timeout old, and of
that hand-back and the child's creation only the first happens; a node whose child runs is left
alone; a child that ended without its parent node hearing of it is reported, once per timeout."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select, text, update
from sqlalchemy.engine import make_url

from orchestrator import catalog, recovery, scheduling
from orchestrator.db import make_engine
from orchestrator.errors import LostClaim
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.migrate import upgrade
from orchestrator.models import InstanceRow, NodeRow, utcnow
from orchestrator.nodes import subworkflow
from orchestrator.states import InstanceStatus
from tests.acceptance.helpers import subworkflow_pair
from tests.support.fixtures import MYSQL_URL

CHILD, PARENT = subworkflow_pair("sweep")
TIMEOUT = 3.0


@pytest.fixture(params=["mysql", "mysql-unicode_ci", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    if request.param == "mysql":
        yield request.getfixturevalue("db")
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'orchestrator.sqlite3'}"
    else:
        # a database whose collation is not the one the connection gets: the child key's SQL must
        # not mix collations (that would fail every sweep, hand-backs of ordinary nodes included)
        url = make_url(MYSQL_URL).set(database="orch_test_unicode_ci").render_as_string(hide_password=False)
        with create_engine(make_url(url).set(database=""), isolation_level="AUTOCOMMIT").connect() as server:
            server.execute(text("DROP DATABASE IF EXISTS orch_test_unicode_ci"))
            server.execute(text("CREATE DATABASE orch_test_unicode_ci COLLATE utf8mb4_unicode_ci"))
    upgrade(url)
    other = make_engine(url)
    yield other
    other.dispose()
    if request.param != "sqlite":
        with create_engine(make_url(url).set(database=""), isolation_level="AUTOCOMMIT").connect() as server:
            server.execute(text("DROP DATABASE orch_test_unicode_ci"))


def _claimed_sub(engine: Engine) -> str:
    catalog.save_definition(engine, CHILD)
    catalog.save_definition(engine, PARENT)
    parent_id = create_instance(engine, InstanceRequest(PARENT["name"], start=False)).instance_id
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


def _child(engine: Engine, parent_id: str, attempt: int, held: bool = False) -> str:
    """A child instance for `attempt` of the parent's `sub`; `held`: created as a worker creates it,
    only while that attempt holds the node."""
    request = InstanceRequest(
        CHILD["name"],
        parent_instance_id=parent_id,
        parent_node_id="sub",
        parent_attempt=attempt if held else None,
        external_id=subworkflow.child_key(parent_id, "sub", attempt),
        start=False,
    )
    return create_instance(engine, request).instance_id


def _sub(engine: Engine, parent_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(NodeRow.status, NodeRow.attempt).where(
                NodeRow.instance_id == parent_id, NodeRow.node_id == "sub"
            )
        ).one()


def _child_count(engine: Engine, parent_id: str) -> int:
    with engine.connect() as conn:
        statement = select(func.count()).where(InstanceRow.parent_instance_id == parent_id)
        return int(conn.execute(statement).scalar_one())


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


def test_a_child_created_after_the_sweep_looked_stops_the_hand_back(engine):
    parent_id = _claimed_sub(engine)
    _age(engine, NodeRow, TIMEOUT + 1, "heartbeat_at", instance_id=parent_id)
    (row,) = recovery._expired_leases(engine, TIMEOUT)  # the sweep saw no child...
    _child(engine, parent_id, 1, held=True)  # ...and then the slow worker created it
    stale = utcnow() - timedelta(seconds=TIMEOUT)
    assert recovery.hand_back(engine, row, "test", untouched_since=stale) is None
    assert tuple(_sub(engine, parent_id)) == ("running", 1)


def test_no_child_is_created_for_an_attempt_that_was_handed_back(engine):
    parent_id = _claimed_sub(engine)
    _age(engine, NodeRow, TIMEOUT + 1, "heartbeat_at", instance_id=parent_id)
    assert recovery.sweep(engine, TIMEOUT).handed_back == 1
    with pytest.raises(LostClaim):
        _child(engine, parent_id, 1, held=True)  # the worker of attempt 1 comes back too late
    assert _child_count(engine, parent_id) == 0
    assert tuple(_sub(engine, parent_id)) == ("queued", 2)


def test_a_child_that_ended_unheard_is_reported_once_it_is_old_enough(engine):
    parent_id = _claimed_sub(engine)
    child_id = _child(engine, parent_id, 1, held=True)
    with engine.begin() as conn:
        conn.execute(
            update(InstanceRow)
            .where(InstanceRow.id == child_id)
            .values(status=InstanceStatus.COMPLETED.value, finished_at=utcnow())
        )
    _age(engine, NodeRow, TIMEOUT + 1, "heartbeat_at", instance_id=parent_id)
    assert subworkflow.unreported_children(engine, TIMEOUT) == []  # its own report may be on its way
    _age(engine, InstanceRow, TIMEOUT + 1, "finished_at", id=child_id)
    (finished,) = recovery.sweep(engine, TIMEOUT).finished
    assert (finished.instance_id, finished.parent_instance_id, finished.parent_node_id) == (
        child_id,
        parent_id,
        "sub",
    )
    assert finished.status == "completed" and finished.callback_url is None
    # reported again only a timeout later, not at every sweep while the report waits in a backlog
    assert recovery.sweep(engine, TIMEOUT).finished == []
    _age(engine, NodeRow, TIMEOUT + 1, "heartbeat_at", instance_id=parent_id)
    assert [f.instance_id for f in recovery.sweep(engine, TIMEOUT).finished] == [child_id]
