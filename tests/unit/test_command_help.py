"""What the command line says about settings and outcomes: every `ORCH_*` variable the product reads
is described and listed by the commands that read it; status summaries and exit codes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from orchestrator import command_help, status_text
from orchestrator.connectivity import shown_url

ROOT = Path(__file__).resolve().parents[2]


def _settings_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for package in ("orchestrator", "workers", "api"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name != "command_help.py":
                names |= set(re.findall(r"\"(ORCH_[A-Z_]+)\"", path.read_text(encoding="utf-8")))
    return names


def test_every_setting_the_code_reads_is_described_and_some_command_lists_it():
    read = _settings_read_by_the_code()
    assert {"ORCH_DATABASE_URL", "ORCH_API_URL", "ORCH_API_TOKEN"} <= read  # the scan finds them
    assert read - set(command_help.SETTINGS) == set(), "add these to command_help.SETTINGS"
    listed = {name for names in command_help.COMMAND_SETTINGS.values() for name in names}
    assert read - listed == set(), "add these to the commands that read them"


def test_defaults_in_the_help_come_from_the_settings_themselves():
    assert "sqlite:///var/orchestrator.sqlite3" in command_help.SETTINGS["ORCH_DATABASE_URL"]
    assert "(default 120)" in command_help.SETTINGS["ORCH_HEARTBEAT_TIMEOUT"]


def test_exit_codes_completed_0_failed_1_cancelled_3_and_not_ended_0():
    assert [status_text.exit_code(s) for s in ("completed", "failed", "cancelled")] == [0, 1, 3]
    assert {status_text.exit_code(s) for s in ("pending", "running", "paused")} == {0}
    assert status_text.worst_exit_code(["completed", "cancelled", "failed"]) == 1
    assert status_text.worst_exit_code(["completed", "cancelled"]) == 3
    assert status_text.worst_exit_code(["completed", "completed"]) == 0


def test_summary_of_a_failed_instance():
    status = {
        "id": "i-1",
        "status": "failed",
        "progress": 50,
        "totalNodes": 4,
        "completedNodes": ["a"],
        "failedNodes": ["b"],
        "skippedNodes": ["c", "d"],
        "currentNodes": [],
        "queuedNodes": [],
        "startedAt": "2026-12-02T10:00:00Z",
        "finishedAt": "2026-12-02T10:01:05Z",
        "executionTimeMs": 65_000,
        "error": {"code": "NODE_FAILED", "nodeId": "b", "message": "boom"},
    }
    text = status_text.summary(status, {"workflow": "wf", "version": "1.0.0"})
    assert text.splitlines() == [
        "instance  i-1",
        "workflow  wf 1.0.0",
        "status    failed",
        "progress  50% of 4 nodes (1 completed, 1 failed, 2 skipped)",
        "failed    b",
        "skipped   c, d",
        "error     NODE_FAILED (node b): boom",
        "elapsed   1 min 05 s",
    ]


def test_a_running_instance_has_run_since_it_started_not_until_its_last_update():
    status = {"status": "running", "startedAt": "2026-12-02T10:00:00Z", "executionTimeMs": 0}
    now = datetime(2026, 12, 2, 10, 0, 12, 500_000, tzinfo=UTC)
    assert status_text.elapsed_ms(status, now) == 12_500
    assert status_text.elapsed_text(12_500) == "12.5 s"
    assert status_text.elapsed_text(999) == "999 ms" and status_text.elapsed_text(7_380_000) == "2 h 03 min"


def test_urls_are_shown_without_their_password():
    assert shown_url("mysql+pymysql://orch:s3cret@db:3306/o") == "mysql+pymysql://orch:***@db:3306/o"
    assert shown_url("redis://:s3cret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert "s3cret" not in shown_url("not a url at all s3cret")


def test_summary_counts_the_items_of_a_map_beside_the_nodes():
    status = {
        "id": "i-2",
        "status": "running",
        "progress": 40,
        "totalNodes": 3,
        "totalItems": 7,
        "finishedItems": 3,
        "completedNodes": ["list"],
        "currentNodes": ["m"],
    }
    assert "progress  40% of 3 nodes and 7 items (1 completed)" in status_text.summary(status).splitlines()
