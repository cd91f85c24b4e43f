"""An executor whose name is too long for a node's box in the DAG page.

Load it in the worker (`ORCH_EXECUTOR_MODULES=...,tests.ui.long_names`) and import it in the test (the
API in the test process validates definitions against the executors it knows).
"""

from __future__ import annotations

from typing import Any

from orchestrator import executor
from orchestrator.context import ExecutionContext

EXECUTOR = "tests.ui.anExecutorWhoseNameIsFarTooLongForTheBoxOfItsNode"


@executor(EXECUTOR)
def long_named(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    return {"node": ctx.node_id}
