"""The embedded profile: `orchestrator dev` with SQLite and its private Redis, no server installed."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests

from examples import WORKFLOWS_DIR
from tests.integration.test_walking_skeleton import LINEAR
from tests.support.services import ROOT, expand_node_name, free_port, process_env, wait_for


def _get_json(url: str) -> dict | None:
    try:
        response = requests.get(url, timeout=5)
    except requests.ConnectionError:
        return None
    return response.json() if response.status_code == 200 else None


def test_orchestrator_dev_runs_workflows_on_sqlite_and_the_embedded_broker(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(ORCH_DEV_DIR=str(tmp_path / "dev"), ORCH_EXECUTOR_MODULES="tests.support.executors")
    log = open(tmp_path / "dev.log", "wb")  # noqa: SIM115
    dev = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "dev", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        health = wait_for(lambda: _get_json(f"{base}/health"), 60, "the dev server to answer")
        assert health["checks"] == {"database": "ok", "broker": "ok"}
        started = {}
        for body, data in (
            (LINEAR, {"greeting": "hi"}),
            (
                json.loads((WORKFLOWS_DIR / "data-sync-pipeline.json").read_text()),
                json.loads((WORKFLOWS_DIR / "sample-inputs.json").read_text())["data-sync-pipeline"],
            ),
        ):
            assert requests.post(f"{base}/api/v1/definitions", json=body, timeout=10).status_code == 201
            created = requests.post(
                f"{base}/api/v1/instances", json={"workflow": body["name"], "input": data}, timeout=10
            )
            assert created.status_code == 201, created.text
            started[body["name"]] = created.json()["id"]

        for instance_id in started.values():
            status = wait_for(
                lambda i=instance_id: (
                    (s := _get_json(f"{base}/api/v1/instances/{i}/status"))
                    and s["status"] in ("completed", "failed")
                    and s
                ),
                90,
                "the instance to finish",
            )
            assert status["status"] == "completed", status
        nodes = requests.get(f"{base}/api/v1/instances/{started['linear-three']}/nodes", timeout=10).json()
        assert [n["output"] for n in nodes["nodes"]][1] == {"heard": "hi", "n": 2}
        assert (tmp_path / "dev" / "orchestrator.sqlite3").exists()
        # no id set: the dev worker is known by its node name, as any worker started by a user
        workers = requests.get(f"{base}/api/v1/workers", timeout=10).json()["workers"]
        assert [w["id"] for w in workers] == [expand_node_name("dev@%h")]
    finally:
        dev.send_signal(signal.SIGTERM)
        try:
            dev.wait(timeout=40)
        finally:
            subprocess.run(["pkill", "-KILL", "-g", str(dev.pid)], check=False)
            log.close()
    assert dev.returncode == 0, (tmp_path / "dev.log").read_text()[-3000:]
    banner = re.search(r"broker pid (\d+), worker pid (\d+)", (tmp_path / "dev.log").read_text())
    assert banner, "the dev server did not print its banner"
    for pid in map(int, banner.groups()):
        assert not _running(pid), f"process {pid} outlived the dev server"


def _running(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text().lower()
