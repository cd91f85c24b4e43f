"""`Run.wait` across a restart of a gunicorn-served API: it reconnects and returns the final status."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from orchestrator.client import Client, WaitTimeout
from tests.acceptance.helpers import effects
from tests.api.served import ServedApi
from tests.support import gates
from tests.support.gates import open_gate
from tests.support.services import wait_for


def held(gate: str) -> dict[str, Any]:
    return {
        "name": "held",
        "version": "1.0.0",
        "nodes": [
            {"id": "n1", "type": "task", "executor": gates.EXECUTOR, "config": {"gate": gate}},
            {"id": "n2", "type": "task", "executor": "noop", "dependsOn": ["n1"]},
        ],
    }


def connections_to(port: int) -> int:
    """How many TCP connections on this machine are established to 127.0.0.1:`port` (client side)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state = fields[2], fields[3]
        if remote == f"0100007F:{port:04X}" and state == "01":
            count += 1
    return count


def test_wait_reconnects_while_the_api_restarts_and_returns_completed(db, processes, tmp_path):
    processes.worker("w1", ORCH_EXECUTOR_MODULES=gates.MODULES)
    api = ServedApi(tmp_path, "--workers", "1", ORCH_EXECUTOR_MODULES=gates.MODULES).start()
    gate = tmp_path / "gate"
    outcome: dict[str, Any] = {}
    try:
        client = Client(api.url)
        client.definitions.put(held(str(gate)))
        run = client.submit("held")
        wait_for(lambda: effects(db, run.id, "entered"), 30, "n1 to enter its gate")

        started = time.monotonic()
        try:
            # longer than the server's keepalive interval: the stream stays open but for them
            run.wait(timeout=6)
            raise AssertionError("wait returned while n1 was held")
        except WaitTimeout:
            assert time.monotonic() - started < 30  # else it would wait for the gate's 120 s

        client.close()  # from here on, the only connection to the API is the waiter's

        def waiting() -> None:
            try:
                with Client(api.url) as own:
                    outcome["status"] = own.run(run.id).wait(timeout=120, poll_s=0.2)
            except Exception as exc:  # shown by the assertions below
                outcome["error"] = exc

        waiter = threading.Thread(target=waiting, daemon=True)
        waiter.start()
        # the waiter follows the stream (n1 is held); then the API goes away at once
        wait_for(lambda: connections_to(api.port) >= 1, 30, "the waiter's event stream")
        api.process.kill()
        restarted = ServedApi(tmp_path, "--workers", "1", port=api.port, ORCH_EXECUTOR_MODULES=gates.MODULES)
        assert waiter.is_alive() and not outcome, outcome
        api = restarted.start()
        open_gate(gate)
        waiter.join(timeout=90)
        assert not waiter.is_alive(), "wait did not return after the API came back"
        assert "error" not in outcome, outcome
        assert outcome["status"].status == "completed"
        assert outcome["status"].completed_nodes == ("n1", "n2")
    finally:
        open_gate(gate)
        api.stop()
