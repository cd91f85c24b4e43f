"""Tasks that follow an instance's end: the parent of a sub-workflow, and the completion callback."""

from __future__ import annotations

import contextlib
import logging

import requests

from orchestrator import callbacks, lifecycle, views
from orchestrator.errors import InvalidTransition
from workers import resources, subworkflows
from workers.app import app
from workers.tasks import follow_up

log = logging.getLogger(__name__)


@app.task(name="orchestrator.child_finished", acks_late=True)
def child_finished(child_id: str) -> None:
    follow_up(subworkflows.child_finished(resources.engine(), child_id))


@app.task(name="orchestrator.cancel_children", acks_late=True)
def cancel_children(instance_id: str) -> None:
    """Cancel the unfinished sub-workflow instances of an instance that was cancelled or failed."""
    engine = resources.engine()
    for child_id in lifecycle.open_children(engine, instance_id):
        with contextlib.suppress(InvalidTransition):  # it ended on its own meanwhile
            follow_up(lifecycle.cancel(engine, child_id, reason=f"parent instance {instance_id} ended"))


@app.task(name="orchestrator.notify", bind=True, acks_late=True, max_retries=None)
def notify(self, instance_id: str) -> None:  # type: ignore[no-untyped-def]
    """POST the final status to the instance's callbackUrl, as one attempt of its stored delivery
    (orchestrator/callbacks.py); on failure retry later with exponential backoff (a countdown, so no
    worker slot waits in between), until the delivery's attempts run out."""
    engine = resources.engine()
    attempt = callbacks.take_attempt(engine, instance_id)
    if attempt is None:
        return  # delivered, given up, or this is a duplicate of an attempt being made
    instance = views.instance(engine, instance_id)
    body = {
        "instance": views.status(engine, instance_id),
        "output": instance.get("output"),
        "workflow": instance["workflow"],
        "externalId": instance.get("externalId"),
    }
    try:
        response = requests.post(instance["callbackUrl"], json=body, timeout=callbacks.REQUEST_TIMEOUT_S)
        if response.status_code >= 300:
            raise RuntimeError(f"callback answered {response.status_code}")
    except Exception as exc:
        if attempt >= callbacks.MAX_ATTEMPTS:
            callbacks.settle(engine, instance_id, callbacks.FAILED)
            log.error("callback for %s failed %d times (%s); giving up", instance_id, attempt, exc)
            return
        delay = callbacks.retry_delay(attempt)
        log.warning("callback for %s failed (%s); retry in %ss", instance_id, exc, delay)
        raise self.retry(countdown=delay, exc=exc) from None
    callbacks.settle(engine, instance_id, callbacks.DELIVERED)
