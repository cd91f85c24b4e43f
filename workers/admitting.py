"""The edge of the limits (`orchestrator/admission.py`, `orchestrator/key_limits.py`): a message of a
node under a limit is sent only once admitted, and the end of a node or instance under one lets the
next through. Nodes and instances without limits pass straight on, without a query."""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator import admission, catalog, key_limits, limits, rate_horizon, slot_holders
from orchestrator.limits import Gate
from orchestrator.outcomes import Claim, Dispatch, Finished, NodeFacts, StartInstance
from orchestrator.scheduling import StartCheck
from workers import resources


def admitted(dispatches: list[Dispatch]) -> list[Dispatch]:
    """The messages to send now: those under no limit, and those under limits that are admitted
    (possibly with other waiting nodes their pass let through)."""
    if not any(d.limits for d in dispatches):
        return dispatches
    free = [d for d in dispatches if not d.limits]
    return free + admission.admit(resources.engine(), [d for d in dispatches if d.limits])


def after_attempt(held: Claim, *, stopped_cancelled: bool = False) -> list[Dispatch]:
    """The waiting nodes the end of this attempt lets through, if its node is held to a concurrency
    limit (its slot was freed by the attempt's own transaction; with `stopped_cancelled`, an attempt
    fenced off by a cancel, whose slot was kept until now: `slot_holders.let_go`)."""
    engine = resources.engine()
    spec = catalog.load_definition(engine, held.definition_id).node(held.node_id)
    gates = limits.node_gates(held.workflow, held.node_id, spec.executor, spec.limits)
    if not any(g.kind == limits.CONCURRENCY for g in gates):
        return []
    if stopped_cancelled:
        slot_holders.let_go(engine, held.row_id, held.attempt)
    return admission.release(engine, gates)


def released(gates: Iterable[Gate]) -> list[Dispatch]:
    """The waiting nodes that slots a committed transaction freed let through (`Outcome.freed`)."""
    return admission.release(resources.engine(), gates)


def after_start(held: Claim) -> list[Dispatch]:
    """A node under a rate started: the next waiting nodes may book tokens (`rate_horizon`)."""
    engine = resources.engine()
    spec = catalog.load_definition(engine, held.definition_id).node(held.node_id)
    gates = limits.node_gates(held.workflow, held.node_id, spec.executor, spec.limits)
    return rate_horizon.release(engine, gates)


def after_instance(finished: Finished) -> list[StartInstance]:
    """The pending instances the end of one with a concurrency key lets start."""
    if finished.concurrency_key is None:
        return []
    return key_limits.next_for_key(resources.engine(), finished.concurrency_key)


def start_check(node_id: str, facts: NodeFacts | None) -> StartCheck | None:
    """For a message about to be claimed: the check its claim makes of its rates' buckets of starts
    (`admission.start_wait`), or None for a node under no rate (no query)."""
    if facts is None:
        return None
    spec = catalog.load_definition(resources.engine(), facts.definition_id).node(node_id)
    gates = limits.node_gates(facts.workflow, node_id, spec.executor, spec.limits)
    if not any(g.kind == limits.RATE for g in gates):
        return None
    return lambda conn, now: admission.start_wait(conn, gates, now)


def again_later(
    node_id: str, attempt: int, instance_id: str, facts: NodeFacts, queue: str, wait: float
) -> Dispatch:
    """The same message again, `wait` seconds later: its claim was too early for its rate."""
    spec = catalog.load_definition(resources.engine(), facts.definition_id).node(node_id)
    return Dispatch(
        instance_id=instance_id,
        node_id=node_id,
        attempt=attempt,
        queue=queue,
        priority=facts.priority,
        executor=spec.executor,
        workflow=facts.workflow,
        node_type=spec.type,
        countdown=wait,
        timeout_s=None if spec.timeout_ms is None or spec.executor is None else spec.timeout_ms / 1000,
        row_id=facts.row_id,
        definition_id=facts.definition_id,
    )
