"""The state machines of instances and nodes: one explicit table each.

Only `transitions.py` changes a status column, and only along an edge of these tables; every
change is a guarded UPDATE whose row count says whether it won.
"""

from __future__ import annotations

from enum import StrEnum


class InstanceStatus(StrEnum):
    PENDING = "pending"  # written, not yet scheduled (or created with start=false, or reset by retry)
    RUNNING = "running"  # nodes are being enqueued and run
    PAUSED = "paused"  # nothing new is enqueued; running nodes may finish or checkpoint
    COMPLETED = "completed"  # every node completed or was skipped
    FAILED = "failed"  # a node failed for good, or the workflow timed out
    CANCELLED = "cancelled"  # stopped on request; no node is left queued or running


class NodeStatus(StrEnum):
    PENDING = "pending"  # waiting for its dependencies
    QUEUED = "queued"  # its dependencies are done and a run_node message is (or will be) enqueued
    RUNNING = "running"  # claimed by a worker for the current attempt
    # a wait or sleep node: no worker slot or lease is held; a signal, its timer or its timeout
    # (`wake_at`, fired by the recovery sweep) ends it
    WAITING = "waiting"
    COMPLETED = "completed"  # output stored
    FAILED = "failed"  # the last attempt failed and no retry is left
    # its `when` was false (successors treat it as done; no error), or it can no longer run because
    # a node failed for good and failed the instance (`error` says why: unreachable.py)
    SKIPPED = "skipped"
    CANCELLED = "cancelled"  # its instance was cancelled before it finished


I = InstanceStatus
N = NodeStatus

INSTANCE_TRANSITIONS: dict[InstanceStatus, frozenset[InstanceStatus]] = {
    I.PENDING: frozenset({I.RUNNING, I.CANCELLED, I.FAILED}),
    I.RUNNING: frozenset({I.PAUSED, I.COMPLETED, I.FAILED, I.CANCELLED}),
    I.PAUSED: frozenset({I.RUNNING, I.CANCELLED, I.FAILED}),
    I.FAILED: frozenset({I.PENDING}),  # retry
    I.COMPLETED: frozenset(),
    I.CANCELLED: frozenset(),
}

NODE_TRANSITIONS: dict[NodeStatus, frozenset[NodeStatus]] = {
    # pending -> skipped: a node failed for good upstream or elsewhere (unreachable.py)
    N.PENDING: frozenset({N.QUEUED, N.SKIPPED, N.CANCELLED}),
    # queued -> skipped: its instance failed before the node was claimed (unreachable.py)
    N.QUEUED: frozenset({N.RUNNING, N.SKIPPED, N.CANCELLED}),
    # running -> queued is a retry, a recovery hand-back or a graceful-shutdown hand-back (attempt + 1)
    N.RUNNING: frozenset({N.COMPLETED, N.FAILED, N.SKIPPED, N.CANCELLED, N.QUEUED, N.WAITING}),
    # waiting -> queued: a wait's timeout failed it and it retries; -> skipped: its instance failed
    N.WAITING: frozenset({N.COMPLETED, N.FAILED, N.SKIPPED, N.CANCELLED, N.QUEUED}),
    # an instance retry resets failed nodes, nodes skipped because of a failure (and, with fromNode,
    # finished downstream ones) to pending
    N.COMPLETED: frozenset({N.PENDING}),
    N.FAILED: frozenset({N.PENDING}),
    N.SKIPPED: frozenset({N.PENDING}),
    N.CANCELLED: frozenset({N.PENDING}),
}

FINISHED_INSTANCE = frozenset({I.COMPLETED, I.FAILED, I.CANCELLED})
# nodes whose successors may run: a skipped node counts as done
DONE_NODE = frozenset({N.COMPLETED, N.SKIPPED})


def can_move_instance(source: InstanceStatus, target: InstanceStatus) -> bool:
    return target in INSTANCE_TRANSITIONS[source]


def can_move_node(source: NodeStatus, target: NodeStatus) -> bool:
    return target in NODE_TRANSITIONS[source]


def instance_sources(target: InstanceStatus) -> frozenset[InstanceStatus]:
    """Every state from which an instance may move to `target`."""
    return frozenset(s for s, targets in INSTANCE_TRANSITIONS.items() if target in targets)


def node_sources(target: NodeStatus) -> frozenset[NodeStatus]:
    """Every state from which a node may move to `target`."""
    return frozenset(s for s, targets in NODE_TRANSITIONS.items() if target in targets)
