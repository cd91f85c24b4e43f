"""The example executors, called directly with a real ExecutionContext over an in-memory NodeRuntime."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from examples import WORKFLOWS_DIR, datasync, storage
from examples import executors as example_executors
from orchestrator import executors as registry
from orchestrator.context import ExecutionContext
from orchestrator.errors import Fatal, StopRequested

SAMPLE_INPUTS = json.loads((WORKFLOWS_DIR / "sample-inputs.json").read_text(encoding="utf-8"))


class Runtime:
    """Records what an executor does through its context; `stop_after` checkpoints turn should_stop on."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.logs: list[tuple[str, str, dict[str, Any]]] = []
        self.checkpoints: list[dict[str, Any]] = []
        self.heartbeats = 0
        self.stop_after = stop_after

    def log(self, level: str, message: str, details: dict[str, Any] | None) -> None:
        self.logs.append((level, message, dict(details or {})))

    def checkpoint(self, data: dict[str, Any]) -> None:
        self.checkpoints.append(dict(data))

    def heartbeat(self) -> None:
        self.heartbeats += 1

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.checkpoints) >= self.stop_after

    def batches(self, step: str) -> list[dict[str, Any]]:
        return [d for _, msg, d in self.logs if msg.startswith(f"{step}: batch")]


def make_ctx(
    node_id: str,
    data: dict[str, Any],
    runtime: Runtime | None = None,
    *,
    instance_id: str = "inst-1",
    attempt: int = 1,
    last_checkpoint: dict[str, Any] | None = None,
) -> ExecutionContext:
    return ExecutionContext(
        instance_id=instance_id,
        node_id=node_id,
        attempt=attempt,
        input=data,
        last_checkpoint=last_checkpoint,
        runtime=runtime or Runtime(),
    )


def run(name: str, ctx: ExecutionContext, config: dict[str, Any] | None = None) -> dict[str, Any]:
    return registry.get(name)(ctx, config or {})


@pytest.fixture(autouse=True)
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The examples' settings for one test: a mapping of its own, set on the examples' environment
    (never the process environment, which every thread of this process shares)."""
    variables = {storage.DATA_DIR_ENV: str(tmp_path)}
    monkeypatch.setattr(storage.environment, "variables", variables)
    return variables


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


def query(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, params).fetchall()


# --- registration and workflow files -------------------------------------------------------------


def test_every_executor_in_the_workflow_files_is_registered() -> None:
    used = set()
    for name in ("user-onboarding.json", "data-sync-pipeline.json"):
        definition = json.loads((WORKFLOWS_DIR / name).read_text(encoding="utf-8"))
        used |= {node["executor"] for node in definition["nodes"]}
    assert used == set(example_executors.EXECUTOR_NAMES)
    for name in used:
        assert registry.is_registered(name), name
    assert "datasync" in {registry.domain_of(n) for n in used}


# --- user onboarding -----------------------------------------------------------------------------


def test_validator_rejects_missing_fields_with_fatal() -> None:
    ctx = make_ctx("validate-user-data", {"email": "ann@example.com", "name": " ", "permissions": []})
    with pytest.raises(Fatal) as info:
        run("userValidator", ctx, {"requiredFields": ["email", "name", "department"]})
    assert info.value.retryable is False
    assert info.value.details["missing"] == ["name", "department"]
    assert "name, department" in str(info.value)


def test_validator_rejects_a_malformed_email() -> None:
    ctx = make_ctx("validate-user-data", {"email": "not-an-address", "name": "Ann", "department": "R&D"})
    with pytest.raises(Fatal, match="email"):
        run("userValidator", ctx, {"requiredFields": ["email", "name", "department"]})


def test_onboarding_end_to_end_and_idempotent(data_dir: Path) -> None:
    data = SAMPLE_INPUTS["user-onboarding"]
    valid = run(
        "userValidator",
        make_ctx("validate-user-data", data),
        {"requiredFields": ["email", "name", "department"]},
    )
    assert valid == {"valid": True, "fields": ["email", "name", "department"]}

    # Configs rendered as the engine would render the workflow's templates.
    creator_config = {"department": data["department"], "role": "employee"}
    created = run("userCreator", make_ctx("create-account", data), creator_config)
    assert created["department"] == "R&D" and created["role"] == "employee" and created["created"] is True
    user_id = created["userId"]

    # A retried or recovered attempt (or a second instance for the same email) does not create twice.
    again = run(
        "userCreator", make_ctx("create-account", data, instance_id="inst-2", attempt=2), creator_config
    )
    assert again["userId"] == user_id and again["created"] is False
    users = data_dir / "users.sqlite3"
    assert query(users, "SELECT user_id, email, name, department, role FROM users") == [
        (user_id, "ann@example.com", "Ann", "R&D", "employee")
    ]

    perm_config = {"userId": user_id, "permissions": data["permissions"]}
    for _ in range(2):
        perms = run("permissionSetter", make_ctx("setup-permissions", data), perm_config)
        assert perms == {"userId": user_id, "permissions": ["read"]}
    assert query(users, "SELECT user_id, permission FROM permissions") == [(user_id, "read")]

    mail_config = {
        "to": data["email"],
        "template": "welcome",
        "data": {"name": data["name"], "userId": user_id},
    }
    sent = run("emailSender", make_ctx("send-welcome-email", data), mail_config)
    resent = run("emailSender", make_ctx("send-welcome-email", data, attempt=2), mail_config)
    assert sent == resent and sent["to"] == "ann@example.com"
    rows = query(users, "SELECT message_id, recipient, raw FROM outbox")
    assert len(rows) == 1 and rows[0][0] == sent["messageId"]
    assert "Subject: Welcome, Ann!" in rows[0][2] and user_id in rows[0][2]


def test_permission_setter_fails_for_an_unknown_user() -> None:
    with pytest.raises(Fatal, match="no user"):
        run(
            "permissionSetter",
            make_ctx("setup-permissions", {}),
            {"userId": "usr_nobody", "permissions": ["read"]},
        )


# --- data sync -----------------------------------------------------------------------------------


def sync_input(**overrides: Any) -> dict[str, Any]:
    return {**SAMPLE_INPUTS["data-sync-pipeline"], **overrides}


def run_pipeline(data: dict[str, Any], instance_id: str = "inst-1") -> dict[str, dict[str, Any]]:
    outputs = {}
    for node, name in [
        ("validate", "datasync.sourceValidator"),
        ("extract", "datasync.dataExtractor"),
        ("transform", "datasync.dataTransformer"),
        ("sync", "datasync.dataSyncer"),
    ]:
        outputs[node] = run(name, make_ctx(node, data, instance_id=instance_id))
    return outputs


def test_data_sync_end_to_end_moves_every_row(data_dir: Path) -> None:
    out = run_pipeline(sync_input())
    assert out["validate"] == {"sourceSystem": "crm", "rowCount": 2500, "matchingRows": 2500, "seeded": True}
    assert out["extract"] == {"extracted": 2500, "offset": 2500}
    assert out["transform"] == {"transformed": 2500}
    assert out["sync"] == {"synced": 2500, "targetSystem": "warehouse"}

    target = data_dir / "targets" / "warehouse.sqlite3"
    assert query(target, "SELECT COUNT(*), MIN(id), MAX(id) FROM records") == [(2500, 1, 2500)]
    source_rows = dict(
        (r[0], r[1:]) for r in query(data_dir / "sources" / "crm.sqlite3", "SELECT * FROM records")
    )
    for row_id, name, cents in query(
        target, "SELECT id, name, amount_cents FROM records WHERE id IN (3, 1234)"
    ):
        raw_name, amount, _ = source_rows[row_id]
        assert name == " ".join(raw_name.split()).title() and name != raw_name
        assert cents == round(amount * 100)
    # The instance's staging is gone, and a re-run of the finished sync node reports the same result.
    staging = data_dir / "staging.sqlite3"
    assert query(staging, "SELECT COUNT(*) FROM staged") == [(0,)]
    assert run("datasync.dataSyncer", make_ctx("sync", sync_input(), attempt=2)) == out["sync"]
    # A second run does not reseed the source, and upserts into the same target rows.
    again = run_pipeline(sync_input(), instance_id="inst-2")
    assert again["validate"]["seeded"] is False and again["sync"]["synced"] == 2500
    assert query(target, "SELECT COUNT(*) FROM records") == [(2500,)]


def test_extractor_resumes_from_its_checkpoint(data_dir: Path) -> None:
    data = sync_input()
    run("datasync.sourceValidator", make_ctx("validate", data))

    first = Runtime(stop_after=1)  # should_stop turns true once the first batch is checkpointed
    with pytest.raises(StopRequested, match="stopped at offset 1000"):
        run("datasync.dataExtractor", make_ctx("extract", data, first))
    assert first.checkpoints[-1] == {"offset": 1000}
    assert [b["first"] for b in first.batches("extract")] == [1]

    second = Runtime()
    out = run(
        "datasync.dataExtractor",
        make_ctx("extract", data, second, attempt=2, last_checkpoint=first.checkpoints[-1]),
    )
    assert out == {"extracted": 2500, "offset": 2500}
    # The second attempt starts after the checkpoint: rows 1..1000 were read exactly once overall.
    assert [(b["first"], b["last"]) for b in second.batches("extract")] == [(1001, 2000), (2001, 2500)]
    assert sum(b["rows"] for b in first.batches("extract") + second.batches("extract")) == 2500
    assert second.checkpoints == [{"offset": 2000}, {"offset": 2500}] and second.heartbeats == 2
    assert query(data_dir / "staging.sqlite3", "SELECT COUNT(*) FROM staged") == [(2500,)]


def test_syncer_resumes_from_its_checkpoint(data_dir: Path) -> None:
    data = sync_input(batchSize=700)
    for node, name in [
        ("validate", "datasync.sourceValidator"),
        ("extract", "datasync.dataExtractor"),
        ("transform", "datasync.dataTransformer"),
    ]:
        run(name, make_ctx(node, data))
    first = Runtime(stop_after=2)
    with pytest.raises(StopRequested, match="stopped at offset 1400"):
        run("datasync.dataSyncer", make_ctx("sync", data, first))
    second = Runtime()
    out = run("datasync.dataSyncer", make_ctx("sync", data, second, last_checkpoint=first.checkpoints[-1]))
    assert out["synced"] == 2500
    assert [b["first"] for b in second.batches("sync")] == [1401, 2101]
    assert query(data_dir / "targets" / "warehouse.sqlite3", "SELECT COUNT(*) FROM records") == [(2500,)]


def test_data_filter_and_bad_inputs(settings: dict[str, str], data_dir: Path) -> None:
    settings[datasync.SOURCE_ROWS_ENV] = "300"
    out = run_pipeline(sync_input(dataFilter={"minAmount": 5000}, batchSize=50))
    expected = query(
        data_dir / "sources" / "crm.sqlite3", "SELECT COUNT(*) FROM records WHERE amount >= 5000"
    )[0][0]
    assert 0 < expected < 300
    assert out["validate"]["rowCount"] == 300 and out["validate"]["matchingRows"] == expected
    assert out["sync"]["synced"] == expected
    with pytest.raises(Fatal, match="unsupported dataFilter keys: region"):
        run("datasync.sourceValidator", make_ctx("validate", sync_input(dataFilter={"region": "eu"})))
    with pytest.raises(Fatal, match="batchSize"):
        run("datasync.sourceValidator", make_ctx("validate", sync_input(batchSize=0)))
    with pytest.raises(Fatal, match="does not exist"):
        run("datasync.dataExtractor", make_ctx("extract", sync_input(sourceSystem="erp")))


def test_system_names_are_sanitised_into_the_data_dir(data_dir: Path) -> None:
    out = run("datasync.sourceValidator", make_ctx("validate", sync_input(sourceSystem="../../etc/crm")))
    assert out["sourceSystem"] == "______etc_crm"
    assert (data_dir / "sources" / "______etc_crm.sqlite3").exists()


def test_batch_delay_env_slows_each_batch(settings: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    settings[datasync.BATCH_DELAY_ENV] = "0.25"
    sleeps: list[float] = []
    # the examples' own sleep, not `time.sleep`: nothing else in this process sees the swap
    monkeypatch.setattr(storage.environment, "sleep", sleeps.append)
    run("datasync.sourceValidator", make_ctx("validate", sync_input()))
    run("datasync.dataExtractor", make_ctx("extract", sync_input()))
    assert sleeps == [0.25, 0.25, 0.25]  # one wait after each of the three batches of 1000, 1000, 500


def test_the_examples_read_the_process_environment_and_sleep_unless_given_others() -> None:
    default = storage.Environment()
    assert default.variables is os.environ and default.sleep is time.sleep


def test_concurrent_instances_do_not_trip_over_locks(data_dir: Path) -> None:
    data = sync_input(batchSize=100)
    run("datasync.sourceValidator", make_ctx("validate", data))
    errors: list[BaseException] = []

    def one(instance_id: str) -> None:
        try:
            assert run_pipeline(data, instance_id=instance_id)["sync"]["synced"] == 2500
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(f"inst-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert query(data_dir / "staging.sqlite3", "SELECT COUNT(*) FROM sync_runs") == [(4,)]
