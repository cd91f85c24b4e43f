"""The seed's two workflows from their JSON as written, sub-workflows, logs and the completion callback."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from examples import WORKFLOWS_DIR
from orchestrator.models import InstanceRow
from tests.acceptance.helpers import define, nodes, start
from tests.support.callbacks import CallbackServer
from tests.support.services import wait_for

SAMPLES = json.loads((WORKFLOWS_DIR / "sample-inputs.json").read_text())


def test_the_seed_workflows_run_to_completion_from_their_json(db, live_api, processes):
    processes.worker("w1")
    started = {}
    for name in ("user-onboarding", "data-sync-pipeline"):
        define(live_api, json.loads((WORKFLOWS_DIR / f"{name}.json").read_text()))
        started[name] = start(live_api, name, SAMPLES[name])

    for name, instance_id in started.items():
        status = live_api.wait_status(instance_id, timeout=120)
        assert status["status"] == "completed", (name, status)
    onboarding = nodes(db, started["user-onboarding"])
    user_id = onboarding["create-account"].output["userId"]
    assert onboarding["create-account"].output["role"] == "employee"  # the `|| "employee"` fallback
    assert onboarding["setup-permissions"].output == {"userId": user_id, "permissions": ["read"]}
    assert onboarding["send-welcome-email"].output["to"] == "ann@example.com"
    sync = nodes(db, started["data-sync-pipeline"])
    rows = sync["validate"].output["rowCount"]
    assert rows > 0 and sync["extract"].output["extracted"] == rows and sync["sync"].output["synced"] == rows


CHILD = {
    "name": "child",
    "version": "1.0.0",
    "inputs": {"n": {"type": "integer", "required": True}},
    "nodes": [
        {
            "id": "double",
            "type": "task",
            "executor": "noop",
            "config": {"value": "${input.n}", "doubled": True},
        },
        {
            "id": "check",
            "type": "task",
            "executor": "tests.count",
            "dependsOn": ["double"],
            "config": {"value": "${nodes.double.output.value}"},
        },
    ],
}
FAILING_CHILD = {
    "name": "failing-child",
    "version": "1.0.0",
    "nodes": [{"id": "boom", "type": "task", "executor": "tests.fatal", "config": {"message": "no"}}],
}


def _parent(name: str, child: str) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1.0.0",
        "nodes": [
            {"id": "prepare", "type": "task", "executor": "noop", "config": {"n": 21}},
            {
                "id": "sub",
                "type": "subworkflow",
                "dependsOn": ["prepare"],
                "config": {
                    "workflow": {"name": child, "version": "latest"},
                    "input": {"n": "${nodes.prepare.output.n}"},
                },
            },
            {
                "id": "use",
                "type": "task",
                "executor": "noop",
                "dependsOn": ["sub"],
                "config": {"childSaid": "${nodes.sub.output.value}"},
            },
        ],
    }


def test_a_sub_workflow_output_arrives_in_the_parent_and_a_failing_child_fails_it(db, live_api, processes):
    processes.worker("w1")
    for body in (
        CHILD,
        FAILING_CHILD,
        _parent("parent", "child"),
        _parent("parent-of-failure", "failing-child"),
    ):
        define(live_api, body)
    ok = start(live_api, "parent")
    bad = start(live_api, "parent-of-failure")

    assert live_api.wait_status(ok)["status"] == "completed"
    assert nodes(db, ok)["use"].output == {"childSaid": 21}
    children = live_api.get("/api/v1/instances/" + ok).json()
    assert children["context"]["sub"]["output"] == {"node": "check", "attempt": 1, "value": 21}

    status = live_api.wait_status(bad)
    assert status["status"] == "failed"
    assert status["error"]["nodeId"] == "sub"
    assert nodes(db, bad)["sub"].error["code"] == "SUBWORKFLOW_FAILED"


def test_cancelling_a_parent_cancels_its_running_child(db, live_api, processes):
    from orchestrator import lifecycle
    from workers.tasks import follow_up

    processes.worker("w1")
    define(
        live_api,
        {
            "name": "slow-child",
            "version": "1.0.0",
            # its gate never opens: the child is still running when the parent is cancelled
            "nodes": [{"id": "nap", "type": "task", "executor": "tests.gated", "config": {"gate": "never"}}],
        },
    )
    define(
        live_api,
        {
            "name": "slow-parent",
            "version": "1.0.0",
            "nodes": [{"id": "sub", "type": "subworkflow", "config": {"workflow": {"name": "slow-child"}}}],
        },
    )
    parent = start(live_api, "slow-parent")
    child_id = wait_for(lambda: _child_of(db, parent), 30, "the child instance")

    follow_up(lifecycle.cancel(db, parent))

    assert live_api.wait_status(child_id, statuses=("cancelled",), timeout=30)["status"] == "cancelled"


def _child_of(engine, parent_id):
    from sqlalchemy import select

    from orchestrator.models import InstanceRow

    with engine.connect() as conn:
        return conn.execute(
            select(InstanceRow.id).where(InstanceRow.parent_instance_id == parent_id)
        ).scalar()


def test_the_log_holds_state_changes_and_executor_lines(db, live_api, processes):
    processes.worker("w1")
    define(
        live_api,
        {
            "name": "chatty",
            "version": "1.0.0",
            "nodes": [
                {
                    "id": "say",
                    "type": "task",
                    "executor": "log",
                    "config": {"message": "hello ${input.who}", "level": "warning"},
                }
            ],
        },
    )
    instance_id = start(live_api, "chatty", {"who": "world"})
    assert live_api.wait_status(instance_id)["status"] == "completed"

    lines = live_api.get(f"/api/v1/instances/{instance_id}/logs").json()["logs"]
    said = [line for line in lines if line["message"] == "hello world"]
    assert said and said[0]["level"] == "warning" and said[0]["nodeId"] == "say"
    assert said[0]["executor"] == "log" and said[0]["workerId"] == "w1"
    messages = [line["message"] for line in lines]
    for expected in (
        "instance created",
        "instance running",
        "node running",
        "node completed",
        "instance completed",
    ):
        assert any(m.startswith(expected) for m in messages), (expected, messages)
    assert all(
        {"timestamp", "level", "nodeId", "message", "details", "durationMs"} <= set(line) for line in lines
    )


@pytest.mark.egress_allow("127.0.0.1/32")  # the callback endpoint is a local listener
def test_the_callback_url_receives_the_final_status_after_a_failed_delivery(db, live_api, processes):
    with CallbackServer(fail_first=1) as hooks:
        processes.worker("w1")
        define(
            live_api,
            {
                "name": "notified",
                "version": "1.0.0",
                "nodes": [{"id": "only", "type": "task", "executor": "noop", "config": {"x": 1}}],
            },
        )
        instance_id = start(live_api, "notified", callbackUrl=hooks.url)
        assert live_api.wait_status(instance_id)["status"] == "completed"

        body = wait_for(lambda: hooks.received and hooks.received[0], 30, "the callback")
        assert body["instance"]["id"] == instance_id and body["instance"]["status"] == "completed"
        assert body["output"] == {"x": 1}
        assert hooks.posts == 2  # the refused one and the retry
        wait_for(lambda: _callback_state(db, instance_id) == ("delivered", 2), 10, "the delivery recorded")


def _callback_state(db: Any, instance_id: str) -> tuple[str, int]:
    with db.connect() as conn:
        row = conn.execute(
            select(InstanceRow.callback_state, InstanceRow.callback_attempts).where(
                InstanceRow.id == instance_id
            )
        ).one()
    return row.callback_state, row.callback_attempts
