"""A sub-workflow node's child instance: one per attempt, found by its externalId.

The key makes the child's creation idempotent per attempt (a redelivered `run_node` finds the child
it already created) and lets the child's end name the attempt it belongs to; the recovery sweep
matches it in SQL to find sub-workflow nodes whose child was never created or whose end was never
reported to them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, literal, type_coerce
from sqlalchemy.orm import aliased

from orchestrator.models import InstanceRow, NodeRow

PREFIX = "subworkflow:"


def child_key(parent_id: str, node_id: str, attempt: int) -> str:
    return f"{PREFIX}{parent_id}:{node_id}:{attempt}"


def attempt_of(key: str | None) -> int | None:
    """The parent node's attempt a child was created for; None for an instance not made that way."""
    if not key or not key.startswith(PREFIX):
        return None
    return int(key.rsplit(":", 1)[1])


Child = aliased(InstanceRow, name="child")


def of_current_attempt() -> Any:
    """SQL: `Child` is the child instance of the `NodeRow` in the query, for the node's attempt."""
    # the attempt joins the string as a number, not CAST(... AS CHAR): a cast takes the
    # connection's collation, which may not mix with the columns' own
    attempt = type_coerce(NodeRow.attempt, String)
    key = literal(PREFIX, String) + NodeRow.instance_id + ":" + NodeRow.node_id + ":" + attempt
    return (
        (Child.parent_instance_id == NodeRow.instance_id)
        & (Child.parent_node_id == NodeRow.node_id)
        & (Child.external_id == key)
    )
