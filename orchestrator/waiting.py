"""Why a node that may run is not running yet: the `waitingFor` of the nodes and status read models.

A node is `queued` once its `run_node` message is sent (or about to be, in the transaction's
after-commit) and until a worker claims it. While its instance runs, such a node waits either for
its retry delay (`not_before`, set when a failed attempt is retried with `retryDelay`) to pass, or,
after that, for a worker with a free slot on its queue. A queued node of a paused (or ended)
instance waits for nothing a worker could give it: its message is dropped at claim and the resume
sends it again, so it has no `waitingFor`.

A queued node under a limit (`admission.py`) says which: `{"limit": "executor:crm.push"}` while it
waits for a concurrency slot (its message is not sent), `{"limit": ..., "kind": "rate"}` while it
waits for its rate to book it a token (`rate_horizon.py`; no message either), and
`{"limit": ..., "kind": "rate", "until": ISO}` while its message waits out the countdown to its
token. A pending instance held back by its definition's concurrency key has
`{"limit": "key:<workflow>:<value>"}` (`key_limits.waiting_for`).

A `waiting` node (a `wait` or a `sleep`) holds no worker slot and waits for what its type says, paused
or not: a wait for its signal until its timeout, `{"signal": name, "until": ISO or null}`; a sleep
for its timer, `{"until": ISO}`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.states import InstanceStatus, NodeStatus

WORKER = "worker"  # its message is on the broker; every worker consuming its queue is busy (or none runs)
RETRY_DELAY = "retryDelay"  # a retry, held back until `not_before`
REASONS = (WORKER, RETRY_DELAY)
RATE_WAIT = "rate:"  # `rate_horizon.PREFIX`: a node waiting for its rate to book it a token


def waiting_for(
    node_status: str,
    not_before: datetime | None,
    instance_status: str,
    now: datetime,
    *,
    wake_at: datetime | None = None,
    signal: str | None = None,
    limit_wait: str | None = None,
    admitted: bool = False,
) -> str | dict[str, Any] | None:
    """`worker`, `retryDelay`, what a `waiting` node waits for (its `signal`, if a wait, and until
    `wake_at`), or None for a node that waits for nothing."""
    if node_status == NodeStatus.WAITING.value:
        until = None if wake_at is None else wake_at.isoformat() + "Z"
        return {"until": until} if signal is None else {"signal": signal, "until": until}
    if node_status != NodeStatus.QUEUED.value or instance_status != InstanceStatus.RUNNING.value:
        return None
    if limit_wait is not None and not admitted:
        if not_before is not None and not_before > now:
            return RETRY_DELAY  # a retry waits for its delay first, then for a slot
        if limit_wait.startswith(RATE_WAIT):  # its rate has booked its horizon (`rate_horizon.py`)
            return {"limit": limit_wait[len(RATE_WAIT) :], "kind": "rate"}
        return {"limit": limit_wait, "kind": "concurrency"}
    if not_before is not None and not_before > now:
        if limit_wait is not None:
            return {"limit": limit_wait, "kind": "rate", "until": not_before.isoformat() + "Z"}
        return RETRY_DELAY
    return WORKER
