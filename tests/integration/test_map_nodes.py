"""Map nodes in the node path, run in this process (`run_here`), on MySQL and on SQLite (the
`orchestrator dev` profile): items rendered with `${item}`/`${index}`, the map's output in index order
and its successor released once, `maxConcurrency` holding items back, empty and invalid lists."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select, update

from orchestrator import catalog, lifecycle, recovery, scheduling, storable, views
from orchestrator.db import make_engine
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.migrate import upgrade
from orchestrator.models import CheckpointRow, LogRow, NodeRow, utcnow
from orchestrator.nodes import subworkflow
from orchestrator.outcomes import Outcome
from tests.acceptance.helpers import run_here
from tests.support import output_executors  # noqa: F401  (registers tests.deep_output, tests.big_output)
from tests.support.executors import MAP_FIXED_GATE, map_runs, open_gate
from workers.runtime import run_attempt


@pytest.fixture(params=["mysql", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    if request.param == "mysql":
        yield request.getfixturevalue("db")
        return
    request.getfixturevalue("redis_client").flushdb()  # the gates, as the `db` fixture does for MySQL
    url = f"sqlite:///{tmp_path / 'orchestrator.sqlite3'}"
    upgrade(url)
    other = make_engine(url)
    yield other
    other.dispose()


def mapping(name: str, **map_fields: Any) -> dict[str, Any]:
    """list -> map (a noop per item, echoing it) -> after (reads the map's output)."""
    return {
        "name": name,
        "version": "1.0.0",
        "nodes": [
            {"id": "list", "executor": "noop", "config": {"items": "${input.list}"}},
            {
                "id": "m",
                "type": "map",
                "dependsOn": ["list"],
                "over": "${nodes.list.output.items}",
                "node": {
                    "executor": "noop",
                    "config": {"value": "${item}", "at": "${index}", "text": "#${index}"},
                },
                **map_fields,
            },
            {"id": "after", "executor": "noop", "dependsOn": ["m"], "config": {"got": "${nodes.m.output}"}},
        ],
    }


def _run(engine: Engine, body: dict[str, Any], values: Any) -> tuple[str, Any]:
    catalog.save_definition(engine, body)
    instance_id = create_instance(engine, InstanceRequest(body["name"], input={"list": values})).instance_id
    return instance_id, run_here(engine, instance_id)


def _rows(engine: Engine, instance_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(select(NodeRow.__table__).where(NodeRow.instance_id == instance_id)).all()
    return {row.node_id: row for row in rows}


def test_a_map_runs_each_item_and_completes_once_with_outputs_in_index_order(engine: Engine) -> None:
    values = [{"n": i} for i in range(25)]
    instance_id, last = _run(engine, mapping("map-order"), values)

    assert last.finished is not None and last.finished.status == "completed"
    rows = _rows(engine, instance_id)
    expected = [{"value": {"n": i}, "at": i, "text": f"#{i}"} for i in range(25)]
    assert rows["m"].output == {"items": expected, "failed": []}
    assert rows["after"].output == {"got": {"items": expected, "failed": []}}
    items = [rows[f"m[{i}]"] for i in range(25)]
    assert {(r.status, r.attempt, r.map_node_id) for r in items} == {("completed", 1, "m")}
    assert rows["m"].items_total == 25 and rows["m"].items_left == 0


def _step(engine: Engine, dispatch: Any) -> Outcome:
    """Claim and run one message's attempt here."""
    d = dispatch
    held = scheduling.claim(engine, d.instance_id, d.node_id, d.attempt, "w", d.facts())
    assert held is not None
    return run_attempt(engine, held, 30.0)


def test_max_concurrency_queues_only_that_many_items_at_a_time(engine: Engine) -> None:
    body = mapping("map-capped", maxConcurrency=3)
    catalog.save_definition(engine, body)
    request = InstanceRequest(body["name"], input={"list": list(range(10))})
    instance_id = create_instance(engine, request).instance_id
    (first,) = scheduling.start(engine, instance_id).dispatches
    (map_message,) = _step(engine, first).dispatches

    started = _step(engine, map_message)

    assert [d.node_id for d in started.dispatches] == ["m[0]", "m[1]", "m[2]"]
    queued = sorted(
        k for k, r in _rows(engine, instance_id).items() if r.map_node_id and r.status == "queued"
    )
    assert queued == ["m[0]", "m[1]", "m[2]"]
    # an item's end queues the next pending one, by index
    (next_item,) = _step(engine, started.dispatches[1]).dispatches
    assert next_item.node_id == "m[3]"
    last = run_here(
        engine, instance_id, first=Outcome([started.dispatches[0], started.dispatches[2], next_item])
    )
    assert last.finished is not None and last.finished.status == "completed"
    assert [x["at"] for x in _rows(engine, instance_id)["m"].output["items"]] == list(range(10))


def test_an_empty_list_completes_the_map_at_once(engine: Engine) -> None:
    instance_id, last = _run(engine, mapping("map-empty"), [])
    assert last.finished is not None and last.finished.status == "completed"
    rows = _rows(engine, instance_id)
    assert rows["m"].output == {"items": [], "failed": []}
    assert rows["after"].status == "completed" and not any(r.map_node_id for r in rows.values())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"a": 1}, "over (${nodes.list.output.items}) must be a list; it is an object"),
        (list(range(10_001)), "over (${nodes.list.output.items}) has 10001 items; a map runs at most 10000"),
    ],
)
def test_a_map_over_no_list_or_too_long_a_list_fails_clearly_without_retry(
    engine: Engine, values: Any, message: str
) -> None:
    instance_id, last = _run(engine, mapping("map-bad-over", retries=3), values)
    assert last.finished is not None and last.finished.status == "failed"
    rows = _rows(engine, instance_id)
    assert rows["m"].status == "failed" and rows["m"].failures == 1
    assert rows["m"].error["code"] == "MAP_OVER_INVALID" and rows["m"].error["message"] == message
    assert not any(r.map_node_id for r in rows.values())


def _claimed_map(engine: Engine, body: dict[str, Any], values: Any) -> tuple[str, Any]:
    """An instance whose map node `m` is claimed (its `list` ran), and the claim."""
    catalog.save_definition(engine, body)
    instance_id = create_instance(engine, InstanceRequest(body["name"], input={"list": values})).instance_id
    (first,) = scheduling.start(engine, instance_id).dispatches
    (map_message,) = _step(engine, first).dispatches
    d = map_message
    held = scheduling.claim(engine, instance_id, "m", d.attempt, "gone-worker", d.facts())
    assert held is not None
    return instance_id, held


def _age(engine: Engine, instance_id: str, node_id: str, seconds: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(NodeRow)
            .where(NodeRow.instance_id == instance_id, NodeRow.node_id == node_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )


def test_the_sweep_hands_back_a_map_claimed_but_never_started_and_leaves_a_started_one(
    engine: Engine,
) -> None:
    instance_id, _ = _claimed_map(engine, mapping("map-lost"), [1, 2])
    _age(engine, instance_id, "m", 10)
    report = recovery.sweep(engine, heartbeat_timeout=3.0)
    assert report.handed_back == 1 and [d.node_id for d in report.dispatches] == ["m"]
    assert (_rows(engine, instance_id)["m"].status, _rows(engine, instance_id)["m"].attempt) == ("queued", 2)

    other, held = _claimed_map(engine, mapping("map-started"), [1, 2])
    started = run_attempt(engine, held, 30.0)
    assert len(started.dispatches) == 2
    _age(engine, other, "m", 10)
    assert recovery.sweep(engine, heartbeat_timeout=3.0).handed_back == 0
    assert _rows(engine, other)["m"].status == "running"


def test_an_item_that_loses_its_worker_too_often_fails_its_map_and_instance(engine: Engine) -> None:
    instance_id, held = _claimed_map(engine, mapping("map-handbacks"), [1, 2, 3])
    item = run_attempt(engine, held, 30.0).dispatches[1]
    assert scheduling.claim(engine, instance_id, item.node_id, item.attempt, "gone-worker", item.facts())
    with engine.begin() as conn:
        conn.execute(
            update(NodeRow)
            .where(NodeRow.instance_id == instance_id, NodeRow.node_id == "m[1]")
            .values(handbacks=recovery.MAX_HANDBACKS)
        )
    _age(engine, instance_id, "m[1]", 10)

    report = recovery.sweep(engine, heartbeat_timeout=3.0)

    assert [f.status for f in report.finished] == ["failed"]
    rows = _rows(engine, instance_id)
    assert rows["m[1]"].status == "failed" and rows["m"].status == "failed"
    assert rows["m"].error["code"] == "ITEM_FAILED" and rows["m"].error["index"] == 1
    assert {rows["m[0]"].status, rows["m[2]"].status} == {"skipped"} and rows["after"].status == "skipped"


def test_pause_holds_back_the_next_items_resume_sends_them_and_cancel_cancels_every_open_item(
    engine: Engine,
) -> None:
    instance_id, held = _claimed_map(engine, mapping("map-pause", maxConcurrency=2), list(range(5)))
    first, _ = run_attempt(engine, held, 30.0).dispatches
    item = scheduling.claim(engine, instance_id, first.node_id, first.attempt, "w", first.facts())
    assert item is not None
    lifecycle.pause(engine, instance_id)

    assert run_attempt(engine, item, 30.0).dispatches == []  # m[2] is queued, not sent
    assert _rows(engine, instance_id)["m[2]"].status == "queued"
    resumed = lifecycle.resume(engine, instance_id)
    assert sorted(d.node_id for d in resumed.dispatches) == ["m[1]", "m[2]"]

    lifecycle.cancel(engine, instance_id)
    rows = _rows(engine, instance_id)
    assert {rows[f"m[{i}]"].status for i in range(1, 5)} == {"cancelled"} and rows["m"].status == "cancelled"


FAILING = {
    "executor": "tests.map_item",
    "config": {"index": "${index}", "item": "${item}", "fail": "${item.fail}"},
}


@pytest.mark.parametrize("all_items", [False, True])
def test_a_retry_reruns_the_items_that_did_not_complete_or_with_all_every_item(
    engine: Engine, redis_client: Any, all_items: bool
) -> None:
    body = {**mapping(f"map-retry-{all_items}"), "nodes": [dict(n) for n in mapping("x")["nodes"]]}
    body["nodes"][1] = {**body["nodes"][1], "node": FAILING, "maxConcurrency": 1}
    values = [{"fail": i == 2} for i in range(5)]
    instance_id, last = _run(engine, body, values)
    assert last.finished is not None and last.finished.status == "failed"
    assert map_runs(redis_client, instance_id) == {0: 1, 1: 1, 2: 1}  # 3 and 4 never started
    open_gate(redis_client, MAP_FIXED_GATE)

    last = run_here(engine, instance_id, first=lifecycle.retry(engine, instance_id, None, all_items))

    assert last.finished is not None and last.finished.status == "completed"
    again = {i: 2 for i in range(3)} if all_items else {0: 1, 1: 1, 2: 2}
    assert map_runs(redis_client, instance_id) == {**again, 3: 1, 4: 1}
    assert _rows(engine, instance_id)["m"].output["items"] == [
        {"index": i, "item": v} for i, v in enumerate(values)
    ]


def test_a_map_of_10000_items_starts_in_one_transaction_and_sends_each_item_as_its_own_task(
    engine: Engine,
) -> None:
    instance_id, held = _claimed_map(engine, mapping("map-10000"), list(range(10_000)))

    started = run_attempt(engine, held, 30.0)

    assert len(started.dispatches) == 10_000
    d = started.dispatches[1234]
    # Flower names the task `<workflow>/<node> [<executor>]`: here `map-10000/m[1234] [noop]`
    assert (d.workflow, d.node_id, d.executor, d.attempt) == ("map-10000", "m[1234]", "noop", 1)
    with engine.connect() as conn:
        counted = conn.execute(
            select(NodeRow.status, func.count())
            .where(NodeRow.instance_id == instance_id, NodeRow.map_node_id == "m")
            .group_by(NodeRow.status)
        ).all()
    assert dict(counted) == {"queued": 10_000}
    item = scheduling.claim(engine, instance_id, d.node_id, d.attempt, "w", d.facts())
    assert item is not None and (item.map_item.index, item.map_item.value) == (1234, 1234)


def test_an_item_whose_body_is_a_sub_workflow_is_completed_by_its_child(engine: Engine) -> None:
    child = {
        "name": "map-child",
        "version": "1.0.0",
        "nodes": [{"id": "only", "executor": "noop", "config": {"got": "${input.x}"}}],
    }
    body = mapping("map-of-children")
    body["nodes"][1]["node"] = {
        "type": "subworkflow",
        "config": {"workflow": {"name": "map-child"}, "input": {"x": "${item}"}},
    }
    catalog.save_definition(engine, child)
    instance_id, held = _claimed_map(engine, body, ["a", "b"])
    items = run_attempt(engine, held, 30.0).dispatches
    assert [(d.node_id, d.node_type) for d in items] == [("m[0]", "subworkflow"), ("m[1]", "subworkflow")]

    children = [_step(engine, d).starts[0].instance_id for d in items]
    for child_id in children:
        run_here(engine, child_id)
    released = [subworkflow.child_finished(engine, child_id) for child_id in children]

    assert released[0].dispatches == [] and [d.node_id for d in released[1].dispatches] == ["after"]
    assert _rows(engine, instance_id)["m"].output == {"items": [{"got": "a"}, {"got": "b"}], "failed": []}


def test_a_map_whose_output_the_store_cannot_hold_fails_and_its_items_keep_theirs(engine: Engine) -> None:
    body = mapping("map-too-deep")
    body["nodes"][1]["node"] = {
        "executor": "tests.deep_output",
        "config": {"depth": storable.max_depth(engine)},
    }
    instance_id, last = _run(engine, body, [1])

    assert last.finished is not None and last.finished.status == "failed"
    rows = _rows(engine, instance_id)
    assert rows["m[0]"].status == "completed" and rows["m"].status == "failed"
    assert rows["m"].error["code"] == "OUTPUT_NOT_STORABLE" and rows["after"].status == "skipped"


def test_progress_counts_items_and_the_nodes_view_shows_a_map_with_its_item_counts(engine: Engine) -> None:
    instance_id, held = _claimed_map(engine, mapping("map-progress", maxConcurrency=2), ["a", "b", "c", "d"])
    first = run_attempt(engine, held, 30.0).dispatches[0]
    _step(engine, first)

    status = views.status(engine, instance_id)
    # 3 nodes and 4 items; `list` and one item finished
    assert status["progress"] == round(100 * 2 / 7) and status["currentNodes"] == ["m"]
    listed = {n["nodeId"]: n for n in views.nodes(engine, instance_id)}
    assert list(listed) == ["list", "m", "after"]
    assert listed["m"]["items"] == {
        "total": 4,
        "done": 1,
        "byStatus": {"completed": 1, "queued": 2, "pending": 1},
    }
    assert "items" not in listed["list"] and listed["m"]["type"] == "map"


def _with_failing_branch(name: str) -> dict[str, Any]:
    """`mapping` (one item at a time) beside a node `bad` whose first attempt fails for good and whose
    next one (after a retry of the instance) completes."""
    body = mapping(name, maxConcurrency=1)
    bad = {"id": "bad", "executor": "tests.flaky", "config": {"failures": 1}}
    return {**body, "nodes": [*body["nodes"], bad]}


@pytest.mark.parametrize("all_items", [False, True])
def test_a_failure_elsewhere_ends_a_running_map_and_a_retry_runs_it_again_to_completion(
    engine: Engine, all_items: bool
) -> None:
    body = _with_failing_branch(f"map-stranded-{all_items}")
    catalog.save_definition(engine, body)
    request = InstanceRequest(body["name"], input={"list": ["a", "b", "c"]})
    instance_id = create_instance(engine, request).instance_id
    first = {d.node_id: d for d in scheduling.start(engine, instance_id).dispatches}
    (map_message,) = _step(engine, first["list"]).dispatches
    (item,) = _step(engine, map_message).dispatches
    running = scheduling.claim(engine, instance_id, item.node_id, item.attempt, "w", item.facts())
    assert running is not None  # m[0] runs (as at a gate); m[1] and m[2] wait for it

    failed = _step(engine, first["bad"])

    assert failed.finished is not None and failed.finished.status == "failed"
    rows = _rows(engine, instance_id)
    assert (rows["m"].status, rows["m"].error["code"], rows["m"].items_left) == (
        "skipped",
        "INSTANCE_FAILED",
        None,
    )
    assert [rows[f"m[{i}]"].status for i in range(3)] == ["running", "skipped", "skipped"]
    # the item still running ends on its own and counts nothing: its map stays ended
    assert run_attempt(engine, running, 30.0).dispatches == []
    assert _rows(engine, instance_id)["m"].status == "skipped"

    last = run_here(engine, instance_id, first=lifecycle.retry(engine, instance_id, None, all_items))

    assert last.finished is not None and last.finished.status == "completed"
    rows = _rows(engine, instance_id)
    assert [x["value"] for x in rows["m"].output["items"]] == ["a", "b", "c"]
    assert rows["after"].status == "completed" and rows["m"].items_left == 0


def test_a_retry_runs_again_a_map_that_a_failure_left_running(engine: Engine) -> None:
    """An instance failed before failures ended their running maps: its map is still `running`."""
    body = _with_failing_branch("map-left-running")
    catalog.save_definition(engine, body)
    request = InstanceRequest(body["name"], input={"list": ["a", "b"]})
    instance_id = create_instance(engine, request).instance_id
    first = {d.node_id: d for d in scheduling.start(engine, instance_id).dispatches}
    (map_message,) = _step(engine, first["list"]).dispatches
    _step(engine, map_message)
    assert _step(engine, first["bad"]).finished is not None
    with engine.begin() as conn:  # as such an instance was left
        conn.execute(
            update(NodeRow)
            .where(NodeRow.instance_id == instance_id, NodeRow.node_id == "m")
            .values(status="running", error=None, items_left=2, finished_at=None)
        )

    last = run_here(engine, instance_id, first=lifecycle.retry(engine, instance_id))

    assert last.finished is not None and last.finished.status == "completed"
    assert [x["value"] for x in _rows(engine, instance_id)["m"].output["items"]] == ["a", "b"]


@contextmanager
def _committed(engine: Engine) -> Iterator[list[list[str]]]:
    """The statements of each transaction committed on `engine` meanwhile, one list per commit."""
    open_ones: dict[int, list[str]] = {}
    committed: list[list[str]] = []

    def executed(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        open_ones.setdefault(id(conn), []).append(statement)

    def commit(conn: Any) -> None:
        committed.append(open_ones.pop(id(conn), []))

    event.listen(engine, "after_cursor_execute", executed)
    event.listen(engine, "commit", commit)
    try:
        yield committed
    finally:
        event.remove(engine, "after_cursor_execute", executed)
        event.remove(engine, "commit", commit)


def test_a_rerun_of_a_map_whose_items_all_completed_completes_it_in_the_transaction_that_counts_them(
    engine: Engine,
) -> None:
    body = _with_failing_branch("map-rerun-done")
    catalog.save_definition(engine, body)
    instance_id = create_instance(engine, InstanceRequest(body["name"], input={"list": ["a"]})).instance_id
    first = {d.node_id: d for d in scheduling.start(engine, instance_id).dispatches}
    (map_message,) = _step(engine, first["list"]).dispatches
    (item,) = _step(engine, map_message).dispatches
    running = scheduling.claim(engine, instance_id, item.node_id, item.attempt, "w", item.facts())
    assert running is not None and _step(engine, first["bad"]).finished is not None
    run_attempt(engine, running, 30.0)  # the map's only item completes after its map ended
    retried = {d.node_id: d for d in lifecycle.retry(engine, instance_id).dispatches}
    d = retried["m"]
    held = scheduling.claim(engine, instance_id, "m", d.attempt, "w", d.facts())
    assert held is not None

    with _committed(engine) as transactions:
        released = run_attempt(engine, held, 30.0)

    assert [x.node_id for x in released.dispatches] == ["after"]
    assert _rows(engine, instance_id)["m"].output == {
        "items": [{"value": "a", "at": 0, "text": "#0"}],
        "failed": [],
    }
    # a crash between counting the items (none left) and completing the map would strand it
    (counted,) = [t for t in transactions if any("items_total" in s for s in t)]
    assert any(s.startswith("UPDATE") and "output=" in s.replace(" ", "") for s in counted)


def test_a_map_whose_items_outputs_add_up_past_the_stores_limit_fails_from_their_sizes(
    engine: Engine,
) -> None:
    body = mapping("map-too-large")
    body["nodes"][1]["node"] = {"executor": "tests.big_output", "config": {"bytes": 1024 * 1024}}
    instance_id, last = _run(engine, body, list(range(9)))

    assert last.finished is not None and last.finished.status == "failed"
    rows = _rows(engine, instance_id)
    assert {rows[f"m[{i}]"].status for i in range(9)} == {"completed"} and rows["m"].status == "failed"
    # told from the sizes the store reports for the items' outputs, before any of them is read
    assert rows["m"].error["code"] == "OUTPUT_NOT_STORABLE"
    assert "items' outputs add up to" in rows["m"].error["message"] and "8 MiB" in rows["m"].error["message"]


def test_the_nodes_view_reads_the_checkpoints_of_the_nodes_it_lists_and_none_of_the_items(db: Engine) -> None:
    instance_id, held = _claimed_map(db, mapping("map-checkpoints"), list(range(50)))
    run_attempt(db, held, 30.0)
    with db.begin() as conn:
        conn.execute(
            insert(CheckpointRow),
            [
                {
                    "instance_id": instance_id,
                    "node_id": node,
                    "attempt": 1,
                    "data": {"at": node},
                    "created_at": utcnow(),
                }
                for node in ["list", *(f"m[{i}]" for i in range(50))]
            ],
        )
    read: list[int] = []

    def counted(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if "FROM node_checkpoints" in statement:
            read.append(cursor.rowcount)  # pymysql reads the whole result first: its row count

    event.listen(db, "after_cursor_execute", counted)
    try:
        listed = {n["nodeId"]: n for n in views.nodes(db, instance_id)}
    finally:
        event.remove(db, "after_cursor_execute", counted)

    assert listed["list"]["lastCheckpoint"] == {"at": "list"} and listed["m"]["lastCheckpoint"] is None
    assert read == [1]


def test_a_failure_skips_a_maps_open_items_in_one_statement_and_one_log_line(engine: Engine) -> None:
    body = _with_failing_branch("map-skip-items")
    catalog.save_definition(engine, body)
    instance_id = create_instance(
        engine, InstanceRequest(body["name"], input={"list": list(range(300))})
    ).instance_id
    first = {d.node_id: d for d in scheduling.start(engine, instance_id).dispatches}
    (map_message,) = _step(engine, first["list"]).dispatches
    _step(engine, map_message)  # m[0] queued, the others pending

    with _committed(engine) as transactions:
        assert _step(engine, first["bad"]).finished is not None

    rows = _rows(engine, instance_id)
    assert {rows[f"m[{i}]"].status for i in range(300)} == {"skipped"}
    assert rows["m[7]"].error["code"] == "INSTANCE_FAILED"
    items_moved = [s for t in transactions for s in t if s.startswith("UPDATE") and "map_node_id" in s]
    assert len(items_moved) == 1
    with engine.connect() as conn:
        lines = conn.execute(
            select(LogRow.node_id, LogRow.message).where(
                LogRow.instance_id == instance_id, LogRow.message.contains("skipped")
            )
        ).all()
    assert sorted(lines) == [
        ("after", "node skipped: instance failed (node bad failed)"),
        ("m", "300 items skipped: instance failed (node bad failed)"),
        ("m", "node skipped: instance failed (node bad failed)"),
    ]
