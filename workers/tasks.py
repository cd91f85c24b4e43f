"""The Celery tasks: `schedule`, `run_node`, and what follows an instance's end."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from orchestrator import scheduling
from orchestrator.errors import StartTooEarly
from orchestrator.nodes import sleep
from orchestrator.outcomes import Claim, NodeFacts, Outcome
from workers import admitting, dispatch, identity, resources, runtime, subworkflows, task_states
from workers.app import app

log = logging.getLogger(__name__)


def follow_up(outcome: Outcome) -> None:
    """Enqueue what a committed transaction released, and react to an instance's end."""
    dispatch.send_nodes(admitting.admitted(outcome.dispatches))
    freed = outcome.all_freed()
    if freed:  # slots the transaction freed: the next waiting nodes now, not at the sweep's pass
        dispatch.send_nodes(admitting.released(freed))
    for start in outcome.starts:
        dispatch.send_schedule(start.instance_id, start.priority)
    for wakeup in outcome.wakeups:
        dispatch.send_wake(wakeup)
    finished = outcome.finished
    if finished is None:
        return
    for start in admitting.after_instance(finished):
        dispatch.send_schedule(start.instance_id, start.priority)
    subworkflows.after_end(finished)
    if finished.callback_url:
        dispatch.send_notify(finished.instance_id, seen=0)


@app.task(name="orchestrator.schedule", acks_late=True)
def schedule(instance_id: str) -> None:
    """Start (or continue) an instance: enqueue every node that is ready."""
    follow_up(scheduling.start(resources.engine(), instance_id))


@app.task(name="orchestrator.wake", acks_late=True)
def wake(instance_id: str, node_id: str, attempt: int) -> None:
    """Fire a sleep node whose time has come (a copy, or a stale attempt's, changes nothing)."""
    follow_up(sleep.wake(resources.engine(), instance_id, node_id, attempt))


# A node attempt's task ends in the attempt's own state (`workers/task_states.py`). A FAILURE is
# acknowledged like a success, never redelivered: the failure is recorded and any retry is our own
# message. `throws`: Celery logs it in one line at INFO; the instance's log has the error.
@app.task(
    name="orchestrator.run_node",
    bind=True,
    acks_late=True,
    acks_on_failure_or_timeout=True,
    throws=(task_states.NodeFailed,),
)
def run_node(
    self: Task,
    instance_id: str,
    node_id: str,
    attempt: int,
    row: int | None = None,
    definition: int | None = None,
    workflow: str | None = None,
    priority: str | None = None,
) -> dict[str, Any]:
    """Claim one attempt of one node, run its executor, record the result, enqueue its successors;
    return how the attempt ended (never its output), or raise so that the task's state says it.

    `row`, `definition`, `workflow` and `priority` are facts the sender knew (`NodeFacts`); a message
    without them (sent by an older version) costs the claim one more read.
    """
    engine = resources.engine()
    settings = resources.settings()
    facts = None
    if row is not None and definition is not None and workflow is not None and priority is not None:
        facts = NodeFacts(row, definition, workflow, priority)
    check = admitting.start_check(node_id, facts)
    try:
        held = scheduling.claim(engine, instance_id, node_id, attempt, identity.worker_id(), facts, check)
    except StartTooEarly as early:  # a rate's starts are full: the same message again when they are not
        assert facts is not None  # a check is only made with the message's facts
        queue = (self.request.delivery_info or {}).get("routing_key") or "default"
        dispatch.send_nodes([admitting.again_later(node_id, attempt, instance_id, facts, queue, early.wait)])
        task_states.drop(self, f"attempt {attempt} waits {early.wait:.3f}s for a start under its rate")
    if held is None:
        log.debug("not claimed: %s/%s attempt %s", instance_id, node_id, attempt)
        task_states.drop(self, f"attempt {attempt} not claimed: taken, stale, or its instance is not running")
    if check is not None:  # a start under a rate: its token is spent, the next waiting ones may book
        _after_start(held)
    ran = runtime.run(engine, held, settings.heartbeat_interval)
    follow_up(ran.outcome)
    dispatch.send_nodes(admitting.after_attempt(held, stopped_cancelled=ran.ending is runtime.Ending.FENCED))
    return task_states.settle(self, ran)


def _after_start(held: Claim) -> None:
    """The rate pass a start makes (`rate_horizon`); the node is claimed, so nothing may escape here
    that would leave it running unattended: a pass that fails is the sweep's to make."""
    try:
        dispatch.send_nodes(admitting.after_start(held))
    except Exception:
        log.exception(
            "rate pass after the start of %s/%s failed; the sweep makes it", held.instance_id, held.node_id
        )
