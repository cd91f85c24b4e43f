"""The queued nodes a pass over a limit may let through, in the order it lets them: their instance's
priority, then FIFO. Shared by the passes over concurrency limits (`admission.py`) and over a rate's
horizon (`rate_horizon.py`), which differ only in which waiting nodes they read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from orchestrator.limit_rows import NOT_ADMITTED, PRIORITY_ORDER, under
from orchestrator.limits import Gate
from orchestrator.models import InstanceRow, NodeRow
from orchestrator.scheduling import QUEUED_NODE
from orchestrator.states import InstanceStatus as I
from orchestrator.states import NodeStatus as N


def waiting(gate: Gate, now: datetime, *where: Any) -> Any:
    """Queued nodes under `gate`, not admitted, due by `now` (a retry in its retryDelay takes nothing
    until it is due), of running instances, and matching `where`; in order."""
    return (
        select(*QUEUED_NODE, NodeRow.not_before, InstanceRow.priority, InstanceRow.workflow_name)
        .add_columns(InstanceRow.definition_id)
        .join(InstanceRow, InstanceRow.id == NodeRow.instance_id)
        .where(
            under(gate),
            NodeRow.status == N.QUEUED.value,
            NOT_ADMITTED,
            or_(NodeRow.not_before.is_(None), NodeRow.not_before <= now),
            InstanceRow.status == I.RUNNING.value,
            *where,
        )
        .order_by(PRIORITY_ORDER, NodeRow.queued_at, NodeRow.id)
    )
