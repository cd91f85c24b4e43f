"""Tasks that follow an instance's end: the parent of a sub-workflow, and the completion callback."""

from __future__ import annotations

import contextlib
import logging

from orchestrator import callbacks, egress, lifecycle, views
from orchestrator.errors import EgressDenied, InvalidTransition
from orchestrator.nodes import subworkflow
from orchestrator.states import FINISHED_INSTANCE
from workers import resources
from workers.app import app
from workers.tasks import follow_up

log = logging.getLogger(__name__)


@app.task(name="orchestrator.child_finished", acks_late=True)
def child_finished(child_id: str) -> None:
    follow_up(subworkflow.child_finished(resources.engine(), child_id))


@app.task(name="orchestrator.cancel_children", acks_late=True)
def cancel_children(instance_id: str) -> None:
    """Cancel the unfinished sub-workflow instances of an instance that was cancelled or failed."""
    engine = resources.engine()
    for child_id in subworkflow.open_children(engine, instance_id):
        with contextlib.suppress(InvalidTransition):  # it ended on its own meanwhile
            follow_up(lifecycle.cancel(engine, child_id, reason=f"parent instance {instance_id} ended"))


@app.task(name="orchestrator.notify", bind=True, acks_late=True, max_retries=None)
def notify(self, instance_id: str, seen: int | None = None) -> None:  # type: ignore[no-untyped-def]
    """POST the final status to the instance's callbackUrl, as one attempt of its stored delivery
    (orchestrator/callbacks.py), expected to follow `seen` attempts; on failure retry later with
    exponential backoff (a countdown, so no worker slot waits in between) while attempts are left."""
    engine = resources.engine()
    attempt = callbacks.take_attempt(engine, instance_id, seen)
    if attempt is None:
        return  # delivered, given up, not ended, or another copy of this message made the attempt
    instance = views.instance(engine, instance_id)
    if instance["status"] not in FINISHED_INSTANCE:
        return  # retried since the attempt was taken: its delivery was cleared with it
    body = {
        "instance": views.status(engine, instance_id),
        "output": instance.get("output"),
        "workflow": instance["workflow"],
        "externalId": instance.get("externalId"),
    }
    try:
        callbacks.post(attempt.url, body, egress.policy_of(resources.settings()))
    except EgressDenied as exc:
        callbacks.deny(engine, instance_id, attempt, exc)
        log.error("callback for %s denied, not retried (%s): %s", instance_id, exc.code, exc.message)
        return
    except callbacks.DeliveryFailed as exc:
        if attempt.number >= callbacks.MAX_ATTEMPTS:
            callbacks.settle(engine, instance_id, attempt, callbacks.FAILED)
            log.error("callback for %s failed %d times (%s); giving up", instance_id, attempt.number, exc)
            return
        delay = callbacks.retry_delay(attempt.number)
        log.warning("callback for %s failed (%s); retry in %ss", instance_id, exc, delay)
        retry = {"args": (instance_id,), "kwargs": {"seen": attempt.number}}
        raise self.retry(countdown=delay, exc=exc, **retry) from None
    callbacks.settle(engine, instance_id, attempt, callbacks.DELIVERED)
