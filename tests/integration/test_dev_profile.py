"""The embedded profile: `orchestrator dev` with SQLite and its private Redis, no server installed.

It says where everything is in its first lines, runs Flower beside the API (unless told not to),
keeps the orchestrator's own tasks off the nodes' slots, and leaves no process behind when stopped."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from kombu import Connection

from examples import WORKFLOWS_DIR
from tests.integration.test_walking_skeleton import LINEAR
from tests.support.gates import EXECUTOR as GATE
from tests.support.gates import open_gate
from tests.support.services import ROOT, expand_node_name, free_port, process_env, wait_for

BANNER_LINES = 4


def _get_json(url: str) -> Any:
    try:
        response = requests.get(url, timeout=5)
    except requests.ConnectionError:
        return None
    return response.json() if response.status_code == 200 else None


@dataclass
class Dev:
    proc: subprocess.Popen[bytes]
    base: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def banner(self) -> list[str]:
        def printed() -> list[str] | None:
            lines = self.log().splitlines()
            return lines[:BANNER_LINES] if len(lines) >= BANNER_LINES else None

        return wait_for(printed, 60, "the dev server's first lines")  # type: ignore[no-any-return]

    def get(self, path: str) -> Any:
        return _get_json(self.base + path)

    def post(self, path: str, body: Any) -> requests.Response:
        return requests.post(self.base + path, json=body, timeout=10)


@contextmanager
def dev_server(tmp_path: Path, *args: str, modules: str = "tests.support.executors") -> Iterator[Dev]:
    """`orchestrator dev` as a user starts it; killed with its process group should a test fail."""
    port = free_port()
    env = process_env(ORCH_DEV_DIR=str(tmp_path / "dev"), ORCH_EXECUTOR_MODULES=modules)
    log_path = tmp_path / "dev.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator_cli", "dev", "--port", str(port), *args],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    dev = Dev(proc, f"http://127.0.0.1:{port}", log_path)
    try:
        health = wait_for(lambda: dev.get("/health"), 60, "the dev server to answer")
        assert health["checks"] == {"database": "ok", "broker": "ok"}
        yield dev
    except BaseException:
        print(dev.log()[-6000:])
        raise
    finally:
        # a failed test's leftovers; the tests stop the server themselves and check that nothing remains
        for pid in _tree(proc.pid) if proc.poll() is None else []:
            _kill(pid)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def _stop(dev: Dev, sig: int, children: set[int]) -> None:
    """Stop the dev server with `sig` and check that it ended well and took every child with it."""
    names = {pid: _cmdline(pid) for pid in children}
    dev.proc.send_signal(sig)
    assert dev.proc.wait(timeout=60) == 0, dev.log()[-3000:]
    # the last ones may still be ending (and, orphaned, be reaped by init) just after the server exits
    wait_for(
        lambda: not any(map(_running, children)), 10, f"every child of the dev server to end: {names}", 0.1
    )


def _parents() -> dict[int, int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # a process that just ended
        parents[int(stat.parent.name)] = int(fields[1])
    return parents


def _tree(root: int) -> set[int]:
    """Every live descendant of `root` (children, grandchildren...)."""
    parents = _parents()
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return {pid for pid in found if _running(pid)}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _running(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" not in status.read_text().lower()
    except OSError:
        return False


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _children_once_up(dev: Dev, expected_workers: int) -> set[int]:
    """The server's process tree, once both workers have registered (their pools and beat are up)."""

    def registered() -> bool:
        workers = (dev.get("/api/v1/workers") or {}).get("workers", [])
        return sum(w["alive"] for w in workers) == expected_workers

    wait_for(registered, 60, "both dev workers to register", interval=0.2)
    return _tree(dev.proc.pid)


MAPPED = {  # a map node: its items are node rows of the SQLite store, each its own task
    "name": "dev-map",
    "version": "1.0.0",
    "nodes": [
        {"id": "list", "executor": "noop", "config": {"items": "${input.items}"}},
        {
            "id": "m",
            "type": "map",
            "dependsOn": ["list"],
            "over": "${nodes.list.output.items}",
            "maxConcurrency": 3,
            "node": {"executor": "noop", "config": {"twice": "${item}${item}"}},
        },
    ],
}


LIMITED = {  # limits on SQLite: one instance per key, one `a` at a time across instances, a rate
    "name": "dev-limited",
    "version": "1.0.0",
    "inputs": {"k": {"type": "string", "required": True}},
    "concurrency": {"key": "${input.k}", "limit": 1},
    "nodes": [
        {
            "id": "a",
            "executor": "tests.limited",
            "config": {"seconds": 0.1},
            "concurrency": 1,
            "rate": "20/s",
        },
        {"id": "b", "executor": "noop", "dependsOn": ["a"]},
    ],
}


def _most_at_once(intervals: list[tuple[str, str]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def _check_limited(dev: Dev, ids: list[str]) -> None:
    nodes = [dev.get(f"/api/v1/instances/{i}/nodes")["nodes"] for i in ids]
    a_runs = [(n[0]["startedAt"], n[0]["finishedAt"]) for n in nodes]
    assert _most_at_once(a_runs) == 1, a_runs
    for key in ("x", "y"):
        mine = [dev.get(f"/api/v1/instances/{i}") for i, k in zip(ids, "xxyy", strict=True) if k == key]
        assert _most_at_once([(m["startedAt"], m["finishedAt"]) for m in mine]) == 1, mine
    names = {(e["name"], e["kind"]) for e in dev.get("/api/v1/limits")["limits"]}
    assert {("executor:tests.limited", "concurrency"), ("node:dev-limited/a", "rate")} <= names, names


def test_orchestrator_dev_runs_workflows_on_sqlite_and_the_embedded_broker(tmp_path):
    with dev_server(tmp_path, "--no-flower") as dev:
        started = {}
        for body, data in (
            (LINEAR, {"greeting": "hi"}),
            (MAPPED, {"items": [str(i) for i in range(30)]}),
            (
                json.loads((WORKFLOWS_DIR / "data-sync-pipeline.json").read_text()),
                json.loads((WORKFLOWS_DIR / "sample-inputs.json").read_text())["data-sync-pipeline"],
            ),
        ):
            assert dev.post("/api/v1/definitions", body).status_code == 201
            created = dev.post("/api/v1/instances", {"workflow": body["name"], "input": data})
            assert created.status_code == 201, created.text
            started[body["name"]] = created.json()["id"]
        assert dev.post("/api/v1/definitions", LIMITED).status_code == 201
        limited = [
            dev.post("/api/v1/instances", {"workflow": "dev-limited", "input": {"k": k}}).json()["id"]
            for k in "xxyy"
        ]
        started.update({f"dev-limited-{i}": instance_id for i, instance_id in enumerate(limited)})

        for instance_id in started.values():
            status = wait_for(
                lambda i=instance_id: (
                    (s := dev.get(f"/api/v1/instances/{i}/status"))
                    and s["status"] in ("completed", "failed")
                    and s
                ),
                90,
                "the instance to finish",
            )
            assert status["status"] == "completed", status
        _check_limited(dev, limited)
        nodes = dev.get(f"/api/v1/instances/{started['linear-three']}/nodes")
        assert [n["output"] for n in nodes["nodes"]][1] == {"heard": "hi", "n": 2}
        assert (tmp_path / "dev" / "orchestrator.sqlite3").exists()
        mapped = dev.get(f"/api/v1/instances/{started['dev-map']}/nodes")["nodes"][1]
        assert mapped["output"] == {"items": [{"twice": f"{i}{i}"} for i in range(30)], "failed": []}
        # no ids set: the dev workers are known by their node names, as any worker started by a user
        workers = dev.get("/api/v1/workers")["workers"]
        by_id = {w["id"]: w for w in workers}
        assert sorted(by_id) == [expand_node_name("dev-control@%h"), expand_node_name("dev@%h")]
        # the orchestrator's own tasks have a worker (and a slot) of their own; nodes have the rest
        control, nodes_worker = by_id[expand_node_name("dev-control@%h")], by_id[expand_node_name("dev@%h")]
        assert (control["queues"], control["concurrency"]) == (["orchestrator"], 1), control
        assert "orchestrator" not in nodes_worker["queues"] and nodes_worker["concurrency"] == 2, nodes_worker
        assert {"default", "tests", "datasync"} <= set(nodes_worker["queues"]), nodes_worker

        banner = dev.banner()
        assert banner[1] == "orchestrator dev: Flower  not started (--no-flower)", banner
        children = _children_once_up(dev, 2)
        assert not [pid for pid in children if "flower" in _cmdline(pid)]
        assert "flower" not in re.search(r"pids: (.*)", dev.log()).group(1)  # type: ignore[union-attr]
        _stop(dev, signal.SIGINT, children)  # Ctrl-C


GATED = {
    "name": "dev-gated",
    "version": "1.0.0",
    "inputs": {"gate": {"type": "string", "required": True}},
    "nodes": [{"id": "hold", "type": "task", "executor": GATE, "config": {"gate": "${input.gate}"}}],
}


def _node(dev: Dev, instance_id: str) -> dict[str, Any]:
    return dev.get(f"/api/v1/instances/{instance_id}/nodes")["nodes"][0]  # type: ignore[no-any-return]


def test_make_run_shows_flower_and_keeps_scheduling_while_every_node_slot_is_busy(tmp_path):
    flower_port = free_port()
    modules = "tests.support.executors,tests.support.gates"
    with dev_server(tmp_path, "--flower-port", str(flower_port), modules=modules) as dev:
        api, flower_line, broker_line, _ = dev.banner()
        assert api.startswith(f"orchestrator dev: API     {dev.base} "), api
        flower = f"http://127.0.0.1:{flower_port}"
        assert flower_line.startswith(f"orchestrator dev: Flower  {flower} "), flower_line
        broker_url = re.match(r"orchestrator dev: broker  (\S+) ", broker_line).group(1)  # type: ignore[union-attr]
        assert broker_url == f"redis+socket://{tmp_path / 'dev' / 'redis.sock'}"
        with Connection(broker_url) as conn:  # the printed URL works as ORCH_BROKER_URL
            assert conn.default_channel.client.ping()
        # Flower answers on the given port, its API without a password
        wait_for(lambda: _get_json(f"{flower}/api/workers") is not None, 60, "flower's API", interval=0.2)

        # two long nodes take both node slots
        gate = tmp_path / "gate"
        assert dev.post("/api/v1/definitions", GATED).status_code == 201
        holding = [
            dev.post("/api/v1/instances", {"workflow": "dev-gated", "input": {"gate": str(gate)}})
            for _ in "ab"
        ]
        holding_ids = [r.json()["id"] for r in holding]
        for instance_id in holding_ids:
            wait_for(lambda i=instance_id: _node(dev, i)["status"] == "running", 60, "a held node running")

        # a third instance still starts (`schedule` has a slot of its own); its node waits, and says why
        third = dev.post("/api/v1/instances", {"workflow": "dev-gated", "input": {"gate": str(gate)}}).json()[
            "id"
        ]
        status = wait_for(
            lambda: (s := dev.get(f"/api/v1/instances/{third}/status")) and s["status"] == "running" and s,
            30,
            "the third instance to be scheduled",
        )
        assert status["queuedNodes"] == ["hold"] and status["waitingFor"] == {"hold": "worker"}, status
        node = _node(dev, third)
        assert (node["status"], node["waitingFor"]) == ("queued", "worker"), node
        children = _children_once_up(dev, 2)

        open_gate(gate)
        for instance_id in [*holding_ids, third]:
            done = wait_for(
                lambda i=instance_id: (
                    (s := dev.get(f"/api/v1/instances/{i}/status")) and s["finishedAt"] and s
                ),
                60,
                "every instance to finish",
            )
            assert done["status"] == "completed" and done["waitingFor"] == {}, done
            assert _node(dev, instance_id)["waitingFor"] is None

        # Flower reads the dev broker: it lists the node tasks, by their readable names
        def node_tasks() -> dict[str, Any] | None:
            tasks = _get_json(f"{flower}/api/tasks") or {}
            mine = {k: t for k, t in tasks.items() if k == f"{third}:hold:1" and t.get("state") == "SUCCESS"}
            return mine or None

        task = wait_for(node_tasks, 30, "flower to list the third node's task", interval=0.2)[
            f"{third}:hold:1"
        ]
        assert task["name"] == f"dev-gated/hold [{GATE}]", task

        names = [_cmdline(pid) for pid in children]
        for expected in ("redis-server", "flower", "-n dev@%h", "-n dev-control@%h"):
            assert any(expected in name for name in names), (expected, names)
        _stop(dev, signal.SIGTERM, children)
