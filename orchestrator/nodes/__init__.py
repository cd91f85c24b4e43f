"""Node types: each type of node in one module, behind one interface, found by its type name.

The node path (claim, `completion`, the recovery sweep) is the same for every node; what differs per
type is asked of its `NodeType` here: how a claimed attempt starts, and how the sweep recovers a
running node of the type that nobody will complete. How an attempt completes is each module's own
story (an executor's return, a child instance's end), but it always ends through `completion`.

Adding a type: a module here with its `NodeType`, registered in `TYPES`; the definition validator
(`definitions.py`) and the DAG page's legend. The node path does not change.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Engine, or_

from orchestrator.definitions import NodeSpec
from orchestrator.outcomes import Claim, Outcome

# one repeat-safe action of the recovery sweep: (engine, older_than seconds) -> what it did
SweepAction = Callable[[Engine, float], list[Outcome]]


class NodeType(Protocol):
    """How one type of node starts and how the sweep recovers it."""

    # the `type` of a definition's node
    name: str
    # True: an attempt runs an executor in the worker that claimed it, under a lease its heartbeats
    # renew (the worker's runtime does that: time limits, the heartbeat thread); the sweep hands the
    # node back when the lease expires. False: `start` hands the node off and frees the worker slot;
    # something else (a child instance's end) completes it later.
    runs_executor: bool

    def rows(self) -> ColumnElement[bool]:
        """SQL, on `NodeRow`: the node rows of this type."""
        ...

    def start(self, engine: Engine, held: Claim, spec: NodeSpec, config: dict[str, Any]) -> Outcome:
        """Hand off a claimed attempt whose config is rendered (types that run no executor); the node
        stays running. Raises LostClaim when the attempt no longer holds the node."""
        ...

    def lost(self, cutoff: datetime, gone: Any) -> ColumnElement[bool]:
        """SQL, on running `NodeRow`s of this type: those nothing will complete, to be handed back;
        `cutoff` is a heartbeat timeout ago, `gone` selects the ids of workers marked gone."""
        ...

    def untouched_since(self, cutoff: datetime) -> datetime | None:
        """A hand-back of a lost node happens only if its heartbeat is still older than this (None:
        unguarded), so that it cannot undo a hand-off committed meanwhile."""
        ...

    def sweep_actions(self) -> tuple[SweepAction, ...]:
        """The type's own recovery actions, run by every sweep after the common ones."""
        ...


from orchestrator.nodes import sleep, subworkflow, task, wait  # noqa: E402  (the types implement the interface above)

TYPES: dict[str, NodeType] = {t.name: t for t in (task.TYPE, subworkflow.TYPE, wait.TYPE, sleep.TYPE)}


def of(name: str) -> NodeType:
    """The type of a definition's node; KeyError for a type the validator would have refused."""
    return TYPES[name]


def of_row(type_name: str) -> NodeType:
    """The type of a node row (its `type` column; a map's item has its body's type)."""
    return TYPES[type_name]


def leased() -> ColumnElement[bool]:
    """SQL, on `NodeRow`: nodes whose attempts hold a worker's lease (their worker runs them)."""
    return or_(*(t.rows() for t in TYPES.values() if t.runs_executor))
