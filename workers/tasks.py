"""The Celery tasks: `schedule`, `run_node`, and what follows an instance's end."""

from __future__ import annotations

import logging

from orchestrator import scheduling
from orchestrator.outcomes import NodeFacts, Outcome
from workers import dispatch, identity, resources
from workers.app import app
from workers.runtime import run_attempt

log = logging.getLogger(__name__)


def follow_up(outcome: Outcome) -> None:
    """Enqueue what a committed transaction released, and react to an instance's end."""
    dispatch.send_nodes(outcome.dispatches)
    finished = outcome.finished
    if finished is None:
        return
    if finished.parent_instance_id is not None:
        app.send_task("orchestrator.child_finished", args=(finished.instance_id,), queue="orchestrator")
    if finished.callback_url:
        dispatch.send_notify(finished.instance_id, seen=0)
    if finished.status in ("cancelled", "failed"):
        # nobody waits for the sub-workflows of an ended instance any more
        app.send_task("orchestrator.cancel_children", args=(finished.instance_id,), queue="orchestrator")


@app.task(name="orchestrator.schedule", acks_late=True)
def schedule(instance_id: str) -> None:
    """Start (or continue) an instance: enqueue every node that is ready."""
    follow_up(scheduling.start(resources.engine(), instance_id))


@app.task(name="orchestrator.run_node", acks_late=True)
def run_node(
    instance_id: str,
    node_id: str,
    attempt: int,
    row: int | None = None,
    definition: int | None = None,
    workflow: str | None = None,
    priority: str | None = None,
) -> None:
    """Claim one attempt of one node, run its executor, record the result, enqueue its successors.

    `row`, `definition`, `workflow` and `priority` are facts the sender knew (`NodeFacts`); a message
    without them (sent by an older version) costs the claim one more read.
    """
    engine = resources.engine()
    settings = resources.settings()
    facts = None
    if row is not None and definition is not None and workflow is not None and priority is not None:
        facts = NodeFacts(row, definition, workflow, priority)
    held = scheduling.claim(engine, instance_id, node_id, attempt, identity.worker_id(), facts)
    if held is None:
        log.debug("not claimed: %s/%s attempt %s", instance_id, node_id, attempt)
        return
    follow_up(run_attempt(engine, held, settings.heartbeat_interval))
