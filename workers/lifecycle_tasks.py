"""Tasks that follow an instance's end: the parent of a sub-workflow, and the completion callback."""

from __future__ import annotations

import contextlib
import logging

import requests

from orchestrator import lifecycle, views
from orchestrator.errors import InvalidTransition
from workers import resources, subworkflows
from workers.app import app
from workers.tasks import follow_up

log = logging.getLogger(__name__)

CALLBACK_ATTEMPTS = 8


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


@app.task(name="orchestrator.notify", bind=True, acks_late=True, max_retries=CALLBACK_ATTEMPTS)
def notify(self, instance_id: str) -> None:  # type: ignore[no-untyped-def]
    """POST the final status to the instance's callbackUrl; on failure retry later with exponential
    backoff (a countdown, so no worker slot waits in between)."""
    engine = resources.engine()
    instance = views.instance(engine, instance_id)
    url = instance.get("callbackUrl")
    if not url:
        return
    body = {
        "instance": views.status(engine, instance_id),
        "output": instance.get("output"),
        "workflow": instance["workflow"],
        "externalId": instance.get("externalId"),
    }
    try:
        response = requests.post(url, json=body, timeout=10)
        if response.status_code >= 300:
            raise RuntimeError(f"callback answered {response.status_code}")
    except Exception as exc:
        delay = min(600, 2**self.request.retries)
        log.warning("callback for %s failed (%s); retry in %ss", instance_id, exc, delay)
        raise self.retry(countdown=delay, exc=exc) from None
