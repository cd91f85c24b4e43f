"""Executor limits set through the API against MySQL (and SQLite, the `orchestrator dev` profile): the
precedence of API, `ORCH_LIMITS` and code field by field, a raised limit letting waiting nodes go at
once, the value every admission pass reads under the limit's lock (also the sweep's), the pruning of
idle key rows, and a real worker held to a limit set through the API on an executor without one
(orchestrator/limit_overrides.py, workers/limit_watch.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select

from orchestrator import (
    admission,
    catalog,
    key_limits,
    lifecycle,
    limit_overrides,
    limit_report,
    limits,
    scheduling,
)
from orchestrator.db import make_engine
from orchestrator.errors import NotFound, ValidationError
from orchestrator.executors import executor
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.migrate import upgrade
from orchestrator.models import LimitOverrideRow, LimitRow, utcnow
from orchestrator.outcomes import Dispatch
from orchestrator.recovery import sweep
from workers.runtime import run_attempt

WORKER = "overrides-test"
GATE = "executor:tests.overrides.two"


@executor("tests.overrides.two", concurrency=2, rate="5/s")
def _two(ctx: Any, config: dict[str, Any]) -> dict[str, Any]:
    return {}


# no rate: its slots alone decide (a rate books at most a few tokens ahead, `rate_horizon`)
@executor("tests.overrides.slots", concurrency=2)
def _slots(ctx: Any, config: dict[str, Any]) -> dict[str, Any]:
    return {}


@executor("tests.overrides.free")
def _free(ctx: Any, config: dict[str, Any]) -> dict[str, Any]:
    return {}


@pytest.fixture()
def env_limits(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set `ORCH_LIMITS` for this process (read again on next use), and forget it afterwards."""

    def given(text: str) -> None:
        monkeypatch.setenv("ORCH_LIMITS", text)
        limits.set_overrides(None)

    yield given
    monkeypatch.delenv("ORCH_LIMITS", raising=False)
    limits.set_overrides(None)


def _name() -> str:
    return f"overrides-{uuid.uuid4().hex[:8]}"


def _fan(width: int, executor_name: str = "tests.overrides.two") -> dict[str, Any]:
    return {
        "name": _name(),
        "version": "1.0.0",
        "nodes": [{"id": f"n{i}", "executor": executor_name} for i in range(width)],
    }


def _start(engine: Engine, definition: dict[str, Any], **request: Any) -> tuple[str, list[Dispatch]]:
    catalog.save_definition(engine, definition)
    created = create_instance(engine, InstanceRequest(workflow=definition["name"], **request))
    return created.instance_id, scheduling.start(engine, created.instance_id).dispatches


def _finish(engine: Engine, d: Dispatch) -> None:
    held = scheduling.claim(engine, d.instance_id, d.node_id, d.attempt, WORKER, d.facts())
    assert held is not None, f"the claim of {d.node_id} was refused"
    run_attempt(engine, held, 30.0)


def _entries(engine: Engine, name: str) -> dict[str, dict[str, Any]]:
    return {e["kind"]: e for e in limit_report.report(engine) if e["name"] == name}


def test_the_api_env_and_code_win_field_by_field_in_that_order(db, env_limits):
    view, _ = limit_overrides.put(db, "tests.overrides.two", {"rate": "7/s"})
    assert (view["concurrency"], view["rate"]) == (2, "7/s")
    assert view["sources"] == {"concurrency": "code", "rate": "api"}
    assert view["override"] == {"rate": "7/s"}
    env_limits('{"tests.overrides.two": {"concurrency": 3, "rate": "1/s"}}')
    found = limits.sources("tests.overrides.two")
    assert (found["concurrency"][0], found["concurrency"][1]) == (3, "env")
    assert found["rate"][1] == "api"
    entries = _entries(db, GATE)
    assert (entries["concurrency"]["limit"], entries["concurrency"]["source"]) == (3, "env")
    assert (entries["rate"]["limit"], entries["rate"]["source"]) == ("7/s", "api")
    # a PUT replaces the override: the rate left out inherits again; null removes the concurrency
    view, _ = limit_overrides.put(db, "executor:tests.overrides.two", {"concurrency": None})
    assert (view["concurrency"], view["rate"]) == (None, "1/s")
    assert view["sources"] == {"concurrency": "api", "rate": "env"}
    assert set(_entries(db, GATE)) == {"rate"}
    assert limits.of_executor("tests.overrides.two").concurrency is None
    view, _ = limit_overrides.clear(db, "tests.overrides.two")
    assert view["override"] is None and view["sources"] == {"concurrency": "env", "rate": "env"}
    env_limits("")
    assert limits.sources("tests.overrides.two") == {
        "concurrency": (2, "code"),
        "rate": (limits.parse_rate("5/s"), "code"),
    }
    with pytest.raises(NotFound, match="no limit set through the API"):
        limit_overrides.clear(db, "tests.overrides.two")


def test_a_raised_limit_lets_waiting_nodes_go_at_once_and_a_lowered_one_holds_the_next(db):
    instance_id, dispatches = _start(db, _fan(6, "tests.overrides.slots"))
    sent = admission.admit(db, dispatches)
    assert [d.node_id for d in sent] == ["n0", "n1"]
    _, released = limit_overrides.put(db, "tests.overrides.slots", {"concurrency": 4})
    assert [d.node_id for d in released] == ["n2", "n3"]
    assert _entries(db, "executor:tests.overrides.slots")["concurrency"]["limit"] == 4
    # lowered to 1 with 4 in use: nothing goes until fewer than 1 hold a slot
    _, released = limit_overrides.put(db, "tests.overrides.slots", {"concurrency": 1})
    assert released == []
    running = sent + [d for d in dispatches if d.node_id in ("n2", "n3")]
    for d in running[:3]:
        _finish(db, d)
        assert admission.release(db, d.limits) == []
    _finish(db, running[3])
    assert [d.node_id for d in admission.release(db, running[3].limits)] == ["n4"]
    # removed: every waiting node goes
    _, released = limit_overrides.put(db, "tests.overrides.slots", {"concurrency": None})
    assert [d.node_id for d in released] == ["n5"]
    assert instance_id


def test_every_pass_reads_the_committed_override_under_the_lock_also_the_sweeps(db):
    """Another process's PUT whose pass was lost: this process's copy still says 2, the limit's row
    says 2, but the sweep's pass (and any release) reads 4 under the lock."""
    _, dispatches = _start(db, _fan(4))
    assert [d.node_id for d in admission.admit(db, dispatches)] == ["n0", "n1"]
    with db.begin() as conn:
        conn.execute(
            insert(LimitOverrideRow).values(
                executor="tests.overrides.two",
                concurrency_set=True,
                concurrency=4,
                rate_set=False,
                updated_at=utcnow(),
            )
        )
    assert limits.of_executor("tests.overrides.two").concurrency == 2  # the copy is not read again
    report = sweep(db, heartbeat_timeout=60)
    assert sorted(d.node_id for d in report.dispatches) == ["n2", "n3"]
    with db.connect() as conn:
        value = conn.execute(
            select(LimitRow.value).where(LimitRow.name == GATE, LimitRow.kind == "concurrency")
        )
        assert value.scalar() == "4"


def test_an_api_limit_on_an_executor_without_one_holds_its_nodes(db):
    definition = _fan(3, "tests.overrides.free")
    assert limits.node_gates(definition["name"], "n0", "tests.overrides.free", None) == ()
    limit_overrides.put(db, "tests.overrides.free", {"concurrency": 1})
    _, dispatches = _start(db, definition)
    assert [g.name for g in dispatches[0].limits] == ["executor:tests.overrides.free"]
    assert [d.node_id for d in admission.admit(db, dispatches)] == ["n0"]
    entry = _entries(db, "executor:tests.overrides.free")["concurrency"]
    assert (entry["limit"], entry["inUse"], entry["waiting"], entry["source"]) == (1, 1, 2, "api")


def test_a_bad_override_is_refused_naming_the_field(db):
    for body, field in (
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": "2"}, "concurrency"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"rate": "0/s"}, "rate"),
        ({"rate": "1/2d"}, "rate"),
        ({"rate": " 1/s"}, "rate"),
        ({"rate": 5}, "rate"),
        ({"other": 1}, "other"),
        ({}, "body"),
    ):
        with pytest.raises(ValidationError) as refused:
            limit_overrides.put(db, "tests.overrides.two", body)
        assert field in [p.field for p in refused.value.problems], (body, refused.value)
    assert limit_overrides.put(db, "tests.overrides.two", {"concurrency": 3.0})[0]["concurrency"] == 3
    for name in ("x" * 247, "executor:" + "x" * 247, "a/b", "crm push", ""):
        with pytest.raises(ValidationError) as refused:
            limit_overrides.executor_of(name)
        assert [p.field for p in refused.value.problems] == ["name"]
    assert limit_overrides.executor_of("executor:" + "x" * 246) == "x" * 246
    assert limit_overrides.executor_of("executor:crm.push") == "crm.push"


def _keyed(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1.0.0",
        "concurrency": {"key": "${input.customer}", "limit": 1},
        "nodes": [{"id": "a", "executor": "noop"}],
    }


def _key_rows(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(LimitRow.name).where(LimitRow.name.startswith("key:"))).scalars())


def test_the_sweep_prunes_idle_key_rows_a_few_hundred_at_a_time(db):
    name = _name()
    busy, _ = _start(db, _keyed(name), input={"customer": "busy"})
    for customer in ("c1", "c2", "c3"):
        instance_id, _ = _start(db, _keyed(name), input={"customer": customer})
        lifecycle.cancel(db, instance_id)
    waiting_first, _ = _start(db, _keyed(name), input={"customer": "w"})
    _start(db, _keyed(name), input={"customer": "w"})  # pending behind it
    lifecycle.cancel(db, waiting_first)
    assert _key_rows(db) == {f"key:{name}:{c}" for c in ("busy", "c1", "c2", "c3", "w")}
    assert key_limits.prune_idle(db, at_most=2) == 2
    sweep(db, heartbeat_timeout=60)
    # the running key and the one a pending instance waits for stay
    assert _key_rows(db) == {f"key:{name}:busy", f"key:{name}:w"}
    lifecycle.cancel(db, busy)
    assert key_limits.prune_idle(db) == 1
    assert _key_rows(db) == {f"key:{name}:w"}
    # a key used again gets its row back
    _start(db, _keyed(name), input={"customer": "c1"})
    assert f"key:{name}:c1" in _key_rows(db)


def test_overrides_admission_listing_and_pruning_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'orchestrator.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    catalog.clear_cache()  # definition ids of another database
    try:
        _, dispatches = _start(engine, _fan(3))
        assert [d.node_id for d in admission.admit(engine, dispatches)] == ["n0", "n1"]
        view, released = limit_overrides.put(engine, "tests.overrides.two", {"concurrency": 3, "rate": None})
        assert [d.node_id for d in released] == ["n2"]
        assert view["sources"] == {"concurrency": "api", "rate": "api"}
        page, after = limit_report.page(engine, None)
        ours = [(e["kind"], e["limit"], e["source"]) for e in page if e["name"] == GATE]
        assert ours == [("concurrency", 3, "api")] and after is None
        assert sweep(engine, heartbeat_timeout=60).failed == []
        instance_id, _ = _start(engine, _keyed(_name()), input={"customer": "c"})
        lifecycle.cancel(engine, instance_id)
        assert key_limits.prune_idle(engine) == 1
        limit_overrides.clear(engine, "tests.overrides.two")
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(LimitOverrideRow)).scalar() == 0
    finally:
        limits.set_api_overrides({})
        catalog.clear_cache()
        engine.dispose()


def test_a_real_worker_is_held_to_a_limit_set_through_the_api_within_its_refresh(db, live_api, processes):
    """`sleep` has no limit in code: once set through the API, the nodes a worker sends after its
    copy was read again (the root sleeps longer than `REFRESH_S`) run one at a time."""
    processes.worker("w1", concurrency=3)
    definition = {
        "name": _name(),
        "version": "1.0.0",
        "nodes": [
            {"id": "root", "executor": "sleep", "config": {"seconds": limit_overrides.REFRESH_S + 1.5}},
            *(
                {"id": f"b{i}", "executor": "sleep", "dependsOn": ["root"], "config": {"seconds": 0.5}}
                for i in range(3)
            ),
        ],
    }
    assert live_api.post("/api/v1/definitions", definition).status_code == 201
    answer = live_api.http.put(f"{live_api.url}/api/v1/limits/sleep", json={"concurrency": 1}, timeout=30)
    assert answer.status_code == 200, answer.text
    created = live_api.post("/api/v1/instances", {"workflow": definition["name"]}).json()
    assert live_api.wait_status(created["id"], timeout=90)["status"] == "completed"
    nodes = live_api.get(f"/api/v1/instances/{created['id']}/nodes").json()["nodes"]
    spans = sorted(
        (
            datetime.fromisoformat(n["startedAt"].rstrip("Z")),
            datetime.fromisoformat(n["finishedAt"].rstrip("Z")),
        )
        for n in nodes
        if n["nodeId"].startswith("b")
    )
    assert len(spans) == 3
    for (_, finished), (started, _) in zip(spans, spans[1:], strict=False):
        assert started >= finished, spans  # one at a time
