"""`orchestrator.client` against the live API (served over real HTTP) and real workers: no mocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.client import (
    ApiUnreachable,
    Client,
    ClientError,
    Conflict,
    NotFound,
    TooManyStreams,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
    WorkflowCancelled,
    WorkflowFailed,
)
from orchestrator.settings import Settings
from tests.acceptance.helpers import run_here
from tests.api.helpers import GREETING, chain
from tests.support import gates
from tests.support.fixtures import LiveApi
from tests.support.services import ROOT, free_port

assert gates.EXECUTOR  # registered here too: the API checks the executors a definition names


@pytest.fixture()
def client(live_api):
    with Client(live_api.url) as client:
        yield client


def test_submit_and_wait_returns_the_completed_status_and_the_outputs_are_readable(
    client, processes, tmp_path
):
    processes.worker("w1")
    path = tmp_path / "three.json"
    path.write_text(json.dumps(chain("three", 3, greeting="hi")))
    stored = client.definitions.put(path)  # a path to a JSON file
    assert (stored.name, stored.version, len(stored.nodes)) == ("three", "1.0.0", 3)
    assert client.definitions.put(chain("three", 3, greeting="hi")).id == stored.id  # a dict; identical
    assert client.definitions.get("three").id == stored.id
    assert client.definitions.get("three", "1.0.0").nodes[0]["id"] == "n1"
    assert [(d.name, d.version) for d in client.definitions.list()] == [("three", "1.0.0")]

    run = client.submit(
        "three", input={"who": "ann"}, external_id="order-1", priority="high", tags={"team": "a"}
    )
    assert run.summary is not None and run.summary.external_id == "order-1"
    final = run.wait(timeout=60, raise_on_failure=True)
    assert final.status == "completed" and final.finished and final.progress == 100
    assert final.completed_nodes == ("n1", "n2", "n3") and final.error is None

    instance = run.get()
    assert instance.input == {"who": "ann"} and instance.tags == {"team": "a"}
    assert instance.priority == "high" and instance.finished_at is not None
    assert instance.context["n3"]["output"] == {"node": "n3", "attempt": 1, "greeting": "hi"}
    nodes = run.nodes()
    assert [(n.node_id, n.status, n.attempt) for n in nodes] == [(f"n{i}", "completed", 1) for i in (1, 2, 3)]
    assert nodes[1].output["node"] == "n2" and nodes[1].worker_id == "w1"

    lines = run.logs(node="n2")
    assert lines and {line.node_id for line in lines} == {"n2"}
    assert any(line.message == "node completed" for line in lines)
    assert run.logs(level="error") == []
    assert len(run.logs(limit=2)) == 2
    everything = run.logs()
    assert [line.id for line in run.logs(after_id=everything[0].id)] == [line.id for line in everything[1:]]

    events = list(run.events(timeout=30))  # an ended instance: its snapshot, then `end`
    assert events[-1].kind == "end" and events[-1].data == {"status": "completed"}
    assert {e.node.node_id for e in events if e.node} == {"n1", "n2", "n3"}
    assert [e.log.id for e in events if e.log] == [line.id for line in everything]
    assert client.submit("three", input={"who": "bob"}, external_id="order-1").id == run.id
    assert client.run(run.id).status().status == "completed"


def test_a_failed_run_raises_workflow_failed_with_its_code_and_node(client, processes):
    processes.worker("w1")
    failing = chain("breaks", 3)
    failing["nodes"][1]["executor"] = "tests.fatal"
    client.definitions.put(failing)

    run = client.submit("breaks")
    with pytest.raises(WorkflowFailed) as raised:
        run.wait(timeout=60, raise_on_failure=True)
    failure = raised.value
    assert (failure.code, failure.node_id, failure.message) == ("NODE_FAILED", "n2", "planned fatal failure")
    assert failure.instance_id == run.id and failure.status.failed_nodes == ("n2",)
    assert "NODE_FAILED" in str(failure) and "n2" in str(failure)

    final = run.wait(timeout=10)  # without raise_on_failure: the status, failed
    assert final.status == "failed" and final.error is not None and final.error.code == "NODE_FAILED"
    skipped = {n.node_id: n.skip_reason for n in run.nodes() if n.status == "skipped"}
    assert skipped == {"n3": "upstream failed"}
    with pytest.raises(Conflict) as conflict:
        run.pause()  # a failed instance cannot be paused
    assert conflict.value.status == 409 and conflict.value.code == "INVALID_TRANSITION"

    # the answer's status is read after n1's message is sent: a fast worker may have failed n2 again
    assert run.retry(from_node="n1").status in ("running", "pending", "failed")
    with pytest.raises(WorkflowFailed):
        run.wait(timeout=60, raise_on_failure=True)
    assert {n.node_id: n.attempt for n in run.nodes()}["n1"] == 2


def test_pause_resume_cancel_and_a_cancelled_run_raises_when_asked(client):
    client.definitions.put(GREETING)
    run = client.submit("greeting", input={"email": "a@b.c"}, start=False)
    assert run.status().status == "pending"
    with pytest.raises(Conflict):
        run.resume()  # a pending instance is started, not resumed
    assert run.cancel(reason="not needed").status == "cancelled"
    with pytest.raises(WorkflowCancelled) as raised:
        run.wait(timeout=10, raise_on_failure=True)
    assert (raised.value.code, raised.value.message) == ("CANCELLED", "not needed")
    assert run.wait(timeout=10).status == "cancelled"


def test_instances_list_walks_every_page_of_1200_instances_by_cursor(client):
    client.definitions.put(GREETING)
    bodies = [
        {"workflow": "greeting", "input": {"email": f"u{i}@x.y"}, "start": False, "tags": {"n": str(i % 3)}}
        for i in range(1200)
    ]
    results = client.instances.create_many(bodies)  # 12 requests of 100
    assert [r.index for r in results] == list(range(1200)) and all(r.http_status == 201 for r in results)
    created = {r.instance.id for r in results if r.instance}

    listed = client.instances.list(workflow="greeting", page_size=100)
    first = next(listed)  # lazily: one page is read, the rest when the iteration gets there
    ids = [first.id, *(summary.id for summary in listed)]
    assert len(ids) == 1200 and set(ids) == created
    assert all(s.status == "pending" for s in client.instances.list(status=["pending", "running"]))
    tagged = [s.id for s in client.instances.list(tags={"n": "1"}, page_size=500)]
    assert len(tagged) == 400 == len(set(tagged))
    assert list(client.instances.list(workflow="greeting", status="completed")) == []


def test_errors_are_exceptions_carrying_the_api_code_and_field_details(client, tmp_path):
    client.definitions.put(GREETING)
    with pytest.raises(ValidationFailed) as invalid:
        client.submit("greeting", input={"count": 0})
    assert invalid.value.status == 422 and "input.email" in invalid.value.fields
    assert {d["field"] for d in invalid.value.details} >= {"input.email", "input.count"}

    with pytest.raises(ValidationFailed) as bad_definition:
        client.definitions.put({"name": "x", "nodes": [{"id": "a", "type": "task", "executor": "nope"}]})
    assert bad_definition.value.code == "VALIDATION_ERROR" and bad_definition.value.details
    changed = {**GREETING, "description": "other content"}
    with pytest.raises(Conflict) as conflict:
        client.definitions.put(changed)
    assert conflict.value.code == "CONFLICT"

    with pytest.raises(NotFound) as unknown_workflow:
        client.submit("no-such-workflow")
    assert unknown_workflow.value.code == "WORKFLOW_NOT_FOUND"
    with pytest.raises(NotFound) as unknown_instance:
        client.run("no-such-instance").status()
    assert (unknown_instance.value.status, unknown_instance.value.code) == (404, "NOT_FOUND")
    with pytest.raises(NotFound):
        client.run("no-such-instance").wait(timeout=10)  # not retried until the timeout
    with pytest.raises(NotFound):
        client.definitions.get("greeting", "9.9.9")

    with pytest.raises(ClientError, match="cannot read"):
        client.definitions.put(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ClientError, match="not valid JSON"):
        client.definitions.put(str(tmp_path / "bad.json"))


def test_a_wrong_or_missing_token_raises_unauthorized(db):
    api = LiveApi(Settings.from_env().with_overrides(api_tokens=("right-token",)))
    try:
        for token in (None, "wrong-token"):
            with Client(api.url, token=token) as client, pytest.raises(Unauthorized) as raised:
                client.definitions.list()
            assert (raised.value.status, raised.value.code) == (401, "UNAUTHORIZED")
        with Client(api.url, token="right-token") as client:
            assert client.definitions.put(GREETING).name == "greeting"
    finally:
        api.close()


def test_url_and_token_come_from_the_environment_when_not_given(db):
    api = LiveApi(Settings.from_env().with_overrides(api_tokens=("env-token",)))
    program = (
        "from orchestrator.client import Client, Unauthorized\n"
        "try:\n    print([d.name for d in Client().definitions.list()])\n"
        "except Unauthorized as exc:\n    print(exc.code)\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    try:
        api.post("/api/v1/definitions", GREETING, headers={"Authorization": "Bearer env-token"})
        for token, expected in (("env-token", "['greeting']"), ("other", "UNAUTHORIZED")):
            env = {**base, "ORCH_API_URL": api.url, "ORCH_API_TOKEN": token}
            result = subprocess.run(
                [sys.executable, "-c", program], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
            )
            assert result.stdout.strip() == expected, result.stderr
    finally:
        api.close()


def test_an_api_that_does_not_answer_raises_api_unreachable_and_wait_gives_up_at_its_timeout():
    with Client(f"http://user:hidden-pw@127.0.0.1:{free_port()}") as client:
        with pytest.raises(ApiUnreachable) as raised:
            client.run("x").status()
        assert isinstance(raised.value, ConnectionError)
        assert "Connection refused" in str(raised.value) and "hidden-pw" not in str(raised.value)
        started = time.monotonic()
        with pytest.raises(WaitTimeout):
            client.run("x").wait(timeout=1, poll_s=0.1)  # keeps trying until then: the API may come back
        assert time.monotonic() - started < 10


def test_wait_polls_when_the_api_refuses_event_streams(db, processes):
    processes.worker("w1")
    api = LiveApi(Settings.from_env().with_overrides(max_streams=0))  # every stream: 503
    try:
        with Client(api.url) as client:
            client.definitions.put(chain("two", 2))
            run = client.submit("two")
            with pytest.raises(TooManyStreams):
                next(run.events(reconnect=False))
            assert run.wait(timeout=60, poll_s=0.1).status == "completed"
    finally:
        api.close()


def test_the_documented_example_runs_define_submit_wait_logs(live_api, processes):
    processes.worker("w1")
    example = ROOT / "examples" / "client_example.py"
    page = (ROOT / "docs" / "python-client.md").read_text()
    block = page.split("```python\n", 1)[1].split("```", 1)[0]
    assert block == example.read_text()  # the page shows the program this test runs
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    result = subprocess.run(
        [sys.executable, str(example)],
        env={**env, "ORCH_API_URL": live_api.url, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stored data-sync-pipeline 1.0.0" in result.stdout
    assert "completed in" in result.stdout and "  sync: completed (attempt 1)" in result.stdout
    assert "[sync]" in result.stdout  # its log lines


def test_the_client_imports_neither_flask_nor_celery_nor_the_database_layer():
    program = (
        "import sys, orchestrator.client\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'flask', 'celery', 'sqlalchemy', 'kombu'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_submit_with_start_at_stays_pending_lists_as_delayed_and_a_manual_start_overrides_it(client):
    client.definitions.put(GREETING)
    later = datetime.now(UTC) + timedelta(days=1)
    run = client.submit("greeting", input={"email": "a@b.c"}, start_at=later)
    assert run.status().status == "pending"
    assert [i.id for i in client.instances.list(delayed=True)] == [run.id]
    assert [i.start_at for i in client.instances.list(delayed=True)] == [later]
    assert run.start().status == "running"  # at once, whatever its startAt
    assert list(client.instances.list(delayed=True)) == []


def test_schedules_from_the_client(client):
    client.definitions.put(GREETING)
    created = client.schedules.create(
        "every-hour", "greeting", "0 * * * *", input={"email": "a@b.c"}, overlap="allow", catchup="last"
    )
    assert created.next_fire_at is not None and created.next_fire_at.minute == 0
    assert [s.name for s in client.schedules.list()] == ["every-hour"]
    changed = client.schedules.change("every-hour", priority="high", version=None)
    assert (changed.priority, changed.version, changed.overlap) == ("high", None, "allow")
    assert client.schedules.pause("every-hour").next_fire_at is None
    assert client.schedules.resume("every-hour").next_fire_at is not None
    run = client.schedules.trigger("every-hour")
    assert run.get().tags["scheduleName"] == "every-hour" and run.get().priority == "high"
    assert client.schedules.get("every-hour").last_instance_id == run.id
    with pytest.raises(Conflict):
        client.schedules.create("every-hour", "greeting", "0 * * * *", input={"email": "a@b.c"})
    with pytest.raises(ValidationFailed) as refused:
        client.schedules.create("other", "greeting", "0 * * * *", timezone="Nowhere/Land")
    assert set(refused.value.fields) == {"timezone"}
    assert client.schedules.delete("every-hour").name == "every-hour"
    with pytest.raises(NotFound):
        client.schedules.get("every-hour")


def test_a_runs_items_reads_a_maps_items_a_page_or_all_of_them(client, db):
    each = {"executor": "noop", "config": {"i": "${index}"}}
    client.definitions.put(
        {
            "name": "client-map",
            "version": "1.0.0",
            "nodes": [
                {"id": "list", "executor": "noop", "config": {"items": "${input.list}"}},
                {
                    "id": "m",
                    "type": "map",
                    "dependsOn": ["list"],
                    "over": "${nodes.list.output.items}",
                    "node": each,
                },
            ],
        }
    )
    run = client.submit("client-map", input={"list": list(range(250))}, start=False)
    assert run_here(db, run.id).finished.status == "completed"  # in this process: no worker needed

    every = run.items("m")  # three pages
    assert [item.index for item in every] == list(range(250))
    assert every[7].node_id == "m[7]" and every[7].status == "completed" and every[7].output == {"i": 7}
    page = run.items("m", after=99, limit=10)
    assert [item.index for item in page] == list(range(100, 110))
    assert run.items("m", status="failed") == []
    with pytest.raises(NotFound):
        run.items("list")
    with pytest.raises(ValidationFailed) as raised:
        run.items("m", limit=101)
    assert list(raised.value.fields) == ["limit"]
