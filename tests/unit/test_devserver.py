"""What `orchestrator dev` decides before it starts anything: whether Flower can start, and the
lines that say where everything is. The processes themselves: tests/integration/test_dev_profile.py."""

from __future__ import annotations

import socket
from pathlib import Path

from orchestrator_cli import dev_processes, devserver


def test_flower_is_not_started_on_a_port_in_use_and_the_banner_says_why() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started, line = devserver._flower(port)
    assert started is None and line.startswith(f"not started: 127.0.0.1:{port} is in use"), line
    assert devserver._flower(None) == (None, "not started (--no-flower)")


def test_the_banner_names_the_api_flower_and_the_broker() -> None:
    lines = devserver.banner("::1", 8081, "http://127.0.0.1:5556", "redis+socket:///x/redis.sock", Path("/x"))
    assert lines[0].startswith("orchestrator dev: API     http://[::1]:8081 ")
    assert lines[1] == "orchestrator dev: Flower  http://127.0.0.1:5556"
    assert lines[2].startswith("orchestrator dev: broker  redis+socket:///x/redis.sock ")


def test_flower_listens_on_loopback_only_and_opens_its_api_there() -> None:
    assert "--address=127.0.0.1" in dev_processes.flower_argv(5555)
    assert dev_processes.flower_env({})["FLOWER_UNAUTHENTICATED_API"] == "true"


def test_a_worker_id_set_by_the_caller_is_not_shared_by_the_two_dev_workers() -> None:
    assert (
        dev_processes.control_worker_env({"ORCH_WORKER_ID": "laptop"})["ORCH_WORKER_ID"] == "laptop-control"
    )
    assert "ORCH_WORKER_ID" not in dev_processes.control_worker_env({})
