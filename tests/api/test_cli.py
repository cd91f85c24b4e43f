"""The `orchestrator` client commands, run as processes against the live API and a real worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.api.helpers import GREETING, chain, define
from tests.support.services import ROOT


def orchestrator(live_api, *argv: str, token: str | None = None, timeout: float = 60):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env["ORCH_API_URL"] = live_api.url
    if token:
        env["ORCH_API_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *argv],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_submit_watch_exits_0_when_the_workflow_completes_and_1_when_it_fails(live_api, processes, tmp_path):
    processes.worker("w1")
    definition = tmp_path / "three.json"
    definition.write_text(json.dumps(chain("three", 3, executor="sleep", seconds=0.1)))
    pushed = orchestrator(live_api, "definitions", "push", str(definition))
    assert pushed.returncode == 0, pushed.stderr
    assert "three 1.0.0 stored" in pushed.stdout
    failing = chain("breaks", 2)
    failing["nodes"][1]["executor"] = "tests.fatal"
    define(live_api, failing)

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

    status = orchestrator(live_api, "status", instance_id)
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "completed"
    logs = orchestrator(live_api, "logs", instance_id)
    assert logs.returncode == 0 and "[n3] node completed" in logs.stdout
    followed = orchestrator(live_api, "logs", instance_id, "--follow")
    assert followed.returncode == 0 and followed.stdout == logs.stdout


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
