"""A gate: an executor that holds its node running until the test opens the gate.

A test that needs a node still running while it starts, stops or kills a worker waits for the node
to enter the gate and opens it when it is done, instead of counting on a node that takes "long
enough". The gate is a file (workers run on this machine): `open_gate` creates it. A gate that is
never opened fails its node after `timeout` seconds, so a broken test cannot hold a worker forever.

Load it in the worker (`ORCH_EXECUTOR_MODULES=...,tests.support.gates`) and import it in the test
(the API in the test process validates definitions against the executors it knows).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from orchestrator import Fatal, executor
from orchestrator.context import ExecutionContext
from tests.support.executors import record

EXECUTOR = "tests.gate"
MODULES = "tests.support.executors,examples.executors,tests.support.gates"


@executor(EXECUTOR)
def gate(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Records `entered`, waits until the file `config["gate"]` exists, records `run`, returns."""
    wait_at_file_gate(ctx, config)
    record(ctx, "run")
    return {"node": ctx.node_id, "attempt": ctx.attempt}


def wait_at_file_gate(ctx: ExecutionContext, config: dict[str, Any]) -> None:
    """Record `entered`, then wait until the file `config["gate"]` exists; Fatal after `timeout` s."""
    record(ctx, "entered")
    path = Path(str(config["gate"]))
    deadline = time.monotonic() + float(config.get("timeout", 120))
    while not path.exists():
        if time.monotonic() > deadline:
            raise Fatal(f"the gate {path} was never opened")
        time.sleep(0.05)


def open_gate(path: Path) -> None:
    path.touch()
