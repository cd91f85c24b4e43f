"""An executor that fails for good until the test sets a flag: the first run of an instance fails,
a retry of that instance (after the test sets the flag) succeeds. The flag is a file (workers run on
this machine), as is the optional gate it waits at first (see `gates.py`).

Load it in the worker (`ORCH_EXECUTOR_MODULES=...,tests.support.flaky_executors`, or `MODULES`) and
import it in the test (the API in the test process validates definitions against the executors it
knows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator import Fatal, executor
from orchestrator.context import ExecutionContext
from tests.support.executors import record
from tests.support.gates import wait_at_file_gate

EXECUTOR = "tests.failsUntilFlag"
MODULES = "tests.support.executors,examples.executors,tests.support.gates,tests.support.flaky_executors"


@executor(EXECUTOR)
def fails_until_flag(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """With `gate`, waits until that file exists (records `entered` first); then records `run`, and
    fails with Fatal (no retry) while the file `config["flag"]` does not exist, else returns."""
    if config.get("gate"):
        wait_at_file_gate(ctx, config)
    record(ctx, "run")
    if not Path(str(config["flag"])).exists():
        raise Fatal("planned failure: the flag is not set")
    return {"node": ctx.node_id, "attempt": ctx.attempt}


def set_flag(path: Path) -> None:
    path.touch()
