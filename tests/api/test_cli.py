"""The `orchestrator` client commands, run as processes against the live API and a real worker; and
what every command says about its settings and its failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url

from orchestrator.command_help import COMMAND_SETTINGS
from orchestrator_cli.cli import build_parser
from tests.acceptance.helpers import effects
from tests.api.helpers import GREETING, chain, create, define
from tests.support import gates
from tests.support.fixtures import MYSQL_URL
from tests.support.gates import open_gate
from tests.support.services import ROOT, free_port, wait_for

assert gates.EXECUTOR  # registered here too: the API checks the executors a definition names
CLI = [sys.executable, "-m", "orchestrator_cli"]


def cli_env(api_url: str | None = None, token: str | None = None, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    if api_url:
        env["ORCH_API_URL"] = api_url
    if token:
        env["ORCH_API_TOKEN"] = token
    return {**env, **settings}


def orchestrator(live_api, *argv: str, token: str | None = None, timeout: float = 60):
    return subprocess.run(
        [*CLI, *argv],
        env=cli_env(live_api.url, token),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The command failed with exactly one line on stderr, no traceback, and that line says `needles`."""
    assert result.returncode != 0, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_submit_watch_exits_0_when_the_workflow_completes_and_1_when_it_fails(live_api, processes, tmp_path):
    processes.worker("w1")
    definition = tmp_path / "three.json"
    definition.write_text(json.dumps(chain("three", 3, executor="sleep", seconds=0.1)))
    pushed = orchestrator(live_api, "definitions", "push", str(definition))
    assert pushed.returncode == 0, pushed.stderr
    assert "three 1.0.0 stored" in pushed.stdout
    failing = chain("breaks", 4)  # n1 completes, n2 fails for good, n3 and n4 can no longer run
    failing["nodes"][1]["executor"] = "tests.fatal"
    define(live_api, failing)
    each = {"executor": "noop", "config": {"i": "${index}"}}
    over = "${nodes.list.output.items}"
    listed = {"id": "list", "executor": "noop", "config": {"items": "${input.list}"}}
    map_node = {"id": "m", "type": "map", "dependsOn": ["list"], "over": over, "node": each}
    define(live_api, {"name": "mapped", "version": "1.0.0", "nodes": [listed, map_node]})

    done = orchestrator(live_api, "submit", "three", "--input", '{"who": "me"}', "--watch", "--tag", "k=v")
    assert done.returncode == 0, done.stdout + done.stderr
    instance_id = done.stdout.splitlines()[0]
    assert done.stdout.splitlines()[-1] == f"{instance_id} completed"
    assert "3/3" in done.stderr  # the progress bar reached every node
    assert live_api.get(f"/api/v1/instances/{instance_id}").json()["tags"] == {"k": "v"}

    failed = orchestrator(live_api, "submit", "breaks", "--watch", "--input", "{}", "--input", "{}")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    lines = failed.stdout.splitlines()
    assert len(lines) == 4 and all(line.endswith("failed: planned fatal failure") for line in lines[2:])
    # the bars count what `progress` counts: n1 and n2 finished; the skipped n3 and n4 never ran
    assert "2/4" in failed.stderr and "4/4" not in failed.stderr, failed.stderr

    status = orchestrator(live_api, "status", instance_id)
    assert status.returncode == 0, status.stderr
    assert "workflow  three 1.0.0" in status.stdout and "status    completed" in status.stdout
    assert "progress  100% of 3 nodes (3 completed)" in status.stdout
    raw = orchestrator(live_api, "status", instance_id, "--json")
    assert raw.returncode == 0 and json.loads(raw.stdout)["status"] == "completed"
    logs = orchestrator(live_api, "logs", instance_id)
    assert logs.returncode == 0 and "[n3] node completed" in logs.stdout
    followed = orchestrator(live_api, "logs", instance_id, "--follow")
    assert followed.returncode == 0 and followed.stdout == logs.stdout

    broken = orchestrator(live_api, "status", lines[0])
    assert broken.returncode == 1, broken.stdout + broken.stderr
    for line in (
        "status    failed",
        "progress  50% of 4 nodes (1 completed, 1 failed, 2 skipped)",
        "failed    n2",
        "skipped   n3, n4",
        "error     NODE_FAILED (node n2): planned fatal failure",
    ):
        assert line in broken.stdout.splitlines(), broken.stdout
    broken_raw = orchestrator(live_api, "status", lines[0], "--json")
    assert broken_raw.returncode == 1 and json.loads(broken_raw.stdout)["failedNodes"] == ["n2"]

    # a map's items count one by one, as in `progress`: 2 nodes and 20 items
    mapped = orchestrator(
        live_api, "submit", "mapped", "--input", json.dumps({"list": list(range(20))}), "--watch"
    )
    assert mapped.returncode == 0 and "22/22" in mapped.stderr, mapped.stdout + mapped.stderr
    summary = orchestrator(live_api, "status", mapped.stdout.splitlines()[0]).stdout
    assert "progress  100% of 2 nodes and 20 items (2 completed)" in summary.splitlines(), summary


def test_cancelled_exits_3_from_status_and_watch_and_running_exits_0(db, live_api, processes, tmp_path):
    processes.worker("w1", ORCH_EXECUTOR_MODULES=gates.MODULES)
    gate = tmp_path / "gate"
    held = {
        "name": "held",
        "version": "1.0.0",
        "nodes": [
            {"id": "n1", "type": "task", "executor": gates.EXECUTOR, "config": {"gate": str(gate)}},
            {"id": "n2", "type": "task", "executor": "noop", "dependsOn": ["n1"]},
        ],
    }
    define(live_api, held)
    watcher = subprocess.Popen(
        [*CLI, "submit", "held", "--watch"],
        env=cli_env(live_api.url),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        instance_id = watcher.stdout.readline().strip()  # submit prints the id before it watches
        assert instance_id, watcher.communicate(timeout=30)
        wait_for(lambda: effects(db, instance_id, "entered"), 30, "n1 to enter its gate")

        running = orchestrator(live_api, "status", instance_id)
        assert running.returncode == 0, running.stdout + running.stderr  # nothing went wrong so far
        assert "status    running" in running.stdout and "running   n1" in running.stdout

        cancelled = live_api.post(f"/api/v1/instances/{instance_id}/cancel", {"reason": "changed my mind"})
        assert cancelled.status_code == 200, cancelled.text
        out, err = watcher.communicate(timeout=60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.communicate()
        open_gate(gate)  # let the worker's slot go
    assert watcher.returncode == 3, out + err
    assert out.splitlines()[-1] == f"{instance_id} cancelled: changed my mind"

    status = orchestrator(live_api, "status", instance_id)
    assert status.returncode == 3, status.stdout + status.stderr
    assert "error     CANCELLED: changed my mind" in status.stdout.splitlines()
    assert orchestrator(live_api, "status", instance_id, "--json").returncode == 3


def test_submit_start_at_keeps_the_instance_pending_until_then(live_api):
    define(live_api, GREETING)
    data, later = '{"email": "a@b.c"}', "2999-01-01T09:00:00+01:00"
    result = orchestrator(live_api, "submit", "greeting", "--input", data, "--start-at", later)
    assert result.returncode == 0, result.stderr
    instance = live_api.get(f"/api/v1/instances/{result.stdout.strip()}").json()
    assert (instance["status"], instance["startAt"]) == ("pending", "2999-01-01T08:00:00Z")


def test_status_of_an_instance_cancelled_before_it_started_exits_3(live_api):
    define(live_api, GREETING)
    instance = create(live_api, {"workflow": "greeting", "input": {"email": "a@b.c"}, "start": False})
    assert live_api.post(f"/api/v1/instances/{instance['id']}/cancel").status_code == 200
    status = orchestrator(live_api, "status", instance["id"])
    assert status.returncode == 3, status.stdout + status.stderr
    assert "status    cancelled" in status.stdout and "workflow  greeting 1.0.0" in status.stdout


def test_errors_print_the_api_error_and_exit_2(live_api, tmp_path):
    define(live_api, GREETING)
    missing = orchestrator(live_api, "submit", "no-such-workflow")
    assert missing.returncode == 2
    assert "404 WORKFLOW_NOT_FOUND" in missing.stderr
    invalid = orchestrator(live_api, "submit", "greeting", "--input", "{}")
    assert invalid.returncode == 2 and "input.email" in invalid.stderr
    assert orchestrator(live_api, "submit", "greeting", "--input", "{oops").returncode == 2
    assert orchestrator(live_api, "status", "nope").returncode == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "nodes": []}')
    pushed = orchestrator(live_api, "definitions", "push", str(bad))
    assert pushed.returncode == 2 and "422 VALIDATION_ERROR" in pushed.stderr
    live_api.close()  # nobody answers any more
    gone = orchestrator(live_api, "status", "x")
    assert gone.returncode == 2 and "UNREACHABLE" in gone.stderr


@pytest.mark.parametrize("argv", [["status", "x"], ["submit", "w", "--watch"], ["logs", "x", "--follow"]])
def test_a_client_command_with_no_api_listening_says_so_in_one_line(argv):
    url = f"http://user:hidden-pw@127.0.0.1:{free_port()}"  # a port nobody listens on
    result = subprocess.run(
        [*CLI, *argv], env=cli_env(url), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    line = assert_one_line_error(result, "no answer from http://user:***@127.0.0.1:", "Connection refused")
    assert "ORCH_API_URL" in line and "hidden-pw" not in result.stderr
    assert "HTTPConnectionPool" not in line  # the cause, not the chain of wrappers around it


def _wrong_user_url() -> str:
    url = make_url(MYSQL_URL).set(username="orch_no_such_user", password="pw-never-shown")
    return url.render_as_string(hide_password=False)


@pytest.mark.parametrize("command", [["db", "upgrade"], ["worker", "-l", "info"]])
def test_a_database_that_refuses_the_user_is_one_line_naming_it_without_the_password(command, tmp_path):
    result = subprocess.run(
        [*CLI, *command],
        env=cli_env(ORCH_DATABASE_URL=_wrong_user_url(), ORCH_BROKER_URL="redis://127.0.0.1:1/0"),
        cwd=tmp_path,  # nothing of the checkout's var/ is touched
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    line = assert_one_line_error(result, "orch_no_such_user", "Access denied", "ORCH_DATABASE_URL")
    assert "orch_no_such_user:***@" in line
    assert "pw-never-shown" not in result.stdout + result.stderr


def test_a_database_that_is_not_listening_is_one_line_too(tmp_path):
    url = make_url(MYSQL_URL).set(port=free_port()).render_as_string(hide_password=False)
    result = subprocess.run(
        [*CLI, "db", "upgrade"],
        env=cli_env(ORCH_DATABASE_URL=url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert_one_line_error(result, "cannot connect to the database", "Connection refused")


def _help_of(command: str) -> str:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices[command].format_help()  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("command", ["submit", "status", "logs", "signal", "definitions", "schedules"])
def test_the_help_of_every_client_command_names_the_api_settings(command):
    text = _help_of(command)
    assert "ORCH_API_URL" in text and "ORCH_API_TOKEN" in text and "http://127.0.0.1:8080" in text


def test_the_help_of_status_and_submit_documents_the_exit_codes():
    for command in ("status", "submit"):
        text = " ".join(_help_of(command).split())
        assert "0 completed" in text and "1 failed" in text and "3 cancelled" in text


@pytest.mark.parametrize("command", ["dev", "api", "db"])
def test_the_help_of_every_server_command_names_the_settings_it_reads(command):
    text = _help_of(command)
    for name in COMMAND_SETTINGS[command]:
        assert name in text, (name, text)
    assert "ORCH_DATABASE_URL" in text or command == "dev"


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_worker_and_beat_help_shows_celerys_options_and_our_settings(command):
    result = subprocess.run(
        [*CLI, command, "--help"], env=cli_env(), cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "--loglevel" in result.stdout  # Celery's own options
    for name in COMMAND_SETTINGS[command]:
        assert name in result.stdout, name
    assert "ORCH_BROKER_URL" in result.stdout


def test_schedules_create_list_pause_resume_trigger_delete(live_api):
    define(live_api, GREETING)
    created = orchestrator(
        live_api,
        "schedules",
        "create",
        "nightly",
        "greeting",
        "0 3 * * *",
        "--timezone",
        "Europe/Paris",
        "--input",
        '{"email": "a@b.c"}',
        "--tag",
        "team=hr",
        "--paused",
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.split() == [
        "nightly",
        "greeting",
        "0",
        "3",
        "*",
        "*",
        "*",
        "Europe/Paris",
        "paused",
    ]
    resumed = orchestrator(live_api, "schedules", "resume", "nightly")
    assert resumed.returncode == 0 and resumed.stdout.split()[-1].endswith("Z"), resumed.stdout
    listed = orchestrator(live_api, "schedules", "list")
    assert listed.stdout.splitlines() == resumed.stdout.splitlines()
    triggered = orchestrator(live_api, "schedules", "trigger", "nightly")
    instance = live_api.get(f"/api/v1/instances/{triggered.stdout.strip()}").json()
    assert instance["tags"]["scheduleName"] == "nightly" and instance["tags"]["team"] == "hr"
    assert orchestrator(live_api, "schedules", "pause", "nightly").stdout.split()[-1] == "paused"
    assert orchestrator(live_api, "schedules", "delete", "nightly").returncode == 0

    refused = orchestrator(
        live_api, "schedules", "create", "bad", "greeting", "61 * * * *", "--timezone", "Nowhere"
    )
    assert refused.returncode == 2 and "cron" in refused.stderr and "timezone" in refused.stderr, (
        refused.stderr
    )
    assert_one_line_error(orchestrator(live_api, "schedules", "trigger", "nightly"), "404")
