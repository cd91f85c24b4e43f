"""A DAG workflow orchestrator on Celery, MySQL and Redis.

Executors register with `@executor("domain.name")`; see `orchestrator/README.md` for the layering rule.
"""

from __future__ import annotations

from orchestrator.context import ExecutionContext
from orchestrator.errors import Fatal, Retryable, StopRequested
from orchestrator.executors import executor

__all__ = ["ExecutionContext", "Fatal", "Retryable", "StopRequested", "executor"]
