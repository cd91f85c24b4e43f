"""`task` nodes: an executor runs in the worker that claimed the attempt.

It starts in the worker's runtime (`workers/runtime.py`: the executor is called under a lease that a
heartbeat thread renews, with Celery's time limits), completes with the executor's return value
(`completion.complete`) or fails with its error (`completion.fail`, which retries), and is handed
back by the sweep when its heartbeat stops or its worker is gone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, or_

from orchestrator.definitions import NodeSpec
from orchestrator.models import NodeRow
from orchestrator.outcomes import Claim, Outcome


class TaskNode:
    name = "task"
    runs_executor = True

    def rows(self) -> ColumnElement[bool]:
        return NodeRow.type == self.name

    def start(self, engine: Engine, held: Claim, spec: NodeSpec, config: dict[str, Any]) -> Outcome:
        raise TypeError("a task node runs its executor in the worker's runtime; it is not handed off")

    def lost(self, cutoff: datetime, gone: Any) -> ColumnElement[bool]:
        return self.rows() & or_(NodeRow.heartbeat_at < cutoff, NodeRow.worker_id.in_(gone))

    def untouched_since(self, cutoff: datetime) -> datetime | None:
        return None  # unguarded: the attempt is bumped, so the old worker's later writes are fenced off

    def sweep_actions(self) -> tuple[Any, ...]:
        return ()


TYPE = TaskNode()
