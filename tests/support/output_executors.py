"""Executors that hand the store values it cannot hold, and one whose own database call fails: the
tests of `orchestrator/storable.py` and `orchestrator/failures.py`. A worker loads them when its
`ORCH_EXECUTOR_MODULES` names this module (`WITH_OUTPUT_EXECUTORS`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import create_engine, text

from orchestrator import executor
from orchestrator.context import ExecutionContext

WITH_OUTPUT_EXECUTORS = "tests.support.executors,examples.executors,tests.support.output_executors"


def nested(depth: int) -> dict[str, Any]:
    """`{"a": {"a": ... {"a": 1}}}`: `depth` objects, one inside the other."""
    value: dict[str, Any] = {"a": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@executor("tests.deep_output")
def deep_output(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    return nested(int(config["depth"]))


@executor("tests.big_output")
def big_output(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """An output of `bytes` characters of text (and a little JSON around them)."""
    return {"text": "x" * int(config["bytes"])}


@executor("tests.deep_checkpoint")
def deep_checkpoint(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    ctx.checkpoint(nested(int(config["depth"])))
    return {"checkpointed": True}


@executor("tests.not_json_output")
def not_json_output(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    return {"at": datetime(2026, 1, 1)} if config.get("kind") == "datetime" else {"ratio": float("nan")}


@executor("tests.own_sql_error")
def own_sql_error(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Queries a table that does not exist, through an engine of its own: the driver's error text
    holds the statement and its parameter."""
    engine = create_engine("sqlite://")
    with engine.connect() as conn:
        conn.execute(text("SELECT secret FROM missing_table WHERE token = :t"), {"t": "tok-SECRET"})
    return {}
