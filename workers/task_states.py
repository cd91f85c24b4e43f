"""How a `run_node` task ends for Celery, and so what Flower shows of each node attempt.

The attempt's result is in the store whatever the task does; the task's own state tells Celery's
monitors the same thing. Flower learns it from task events (there is no result backend):

- completed, skipped, or started its child instance: SUCCESS, returning `{status, attempt,
  durationMs}`, never the node's output (it may be large or secret);
- failed for good: FAILURE, with `NodeFailed('<code>', '<message>')` as its exception;
- failed and queued for another attempt: RETRY, with the same exception;
- handed back (a pause, a worker shutting down): RETRY, with `NodeHandedBack('<why>')`; the node
  goes on as the next attempt, from its checkpoint;
- not claimed (a duplicate message, a paused or cancelled instance), or its result fenced off:
  REVOKED: the message or its result was dropped, nothing this attempt did counts.

None of this makes Celery act on its own: a FAILURE is acknowledged like a success
(`acks_on_failure_or_timeout`, set on the task) and never redelivered; a RETRY schedules nothing
(Celery's `Retry` is only raised, not `task.retry()`d: the next attempt is our own message, sent by
then); REVOKED is an event only, and the message is acknowledged (`Ignore`).

A handed-back attempt is RETRY rather than REVOKED: it did part of the node's work and the node goes
on as the next attempt from its checkpoint, which is what Celery calls a retry; REVOKED is kept for
attempts that count for nothing. A dropped message is REVOKED rather than SUCCESS because task ids are
`<instance>:<node>:<attempt>`: a copy of a message that arrives after the real attempt ended must not
turn its FAILURE into a SUCCESS (in Flower's event merge a SUCCESS wins over every state, a REVOKED
over none that ended).
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from celery.exceptions import Ignore, Retry

from workers.runtime import Attempt, Ending

log = logging.getLogger(__name__)

MESSAGE_CHARS = 500  # what Flower shows of an error message


class NodeFailed(Exception):
    """The task state of a failed node attempt: its error code and message (no details, no output)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)  # args, so the exception pickles from the pool process
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class NodeHandedBack(Exception):
    """The task state of an attempt handed back because it was asked to stop; not a failure."""


def summary(attempt: Attempt) -> dict[str, Any]:
    """What a successful task returns: how the attempt ended, never the node's output."""
    return {"status": attempt.ending.value, "attempt": attempt.attempt, "durationMs": attempt.duration_ms}


def settle(task: Any, attempt: Attempt) -> dict[str, Any]:
    """End the task as the attempt ended: return its summary (SUCCESS) or raise what makes its state
    FAILURE, RETRY or REVOKED (see the module doc). Call after the attempt's messages were sent."""
    error = attempt.error or {}
    message = str(error.get("message", ""))[:MESSAGE_CHARS]
    if attempt.ending is Ending.FAILED:
        raise NodeFailed(str(error.get("code", "ERROR")), message)
    if attempt.ending is Ending.RETRYING:
        failed = NodeFailed(str(error.get("code", "ERROR")), message)
        raise Retry(f"attempt {attempt.attempt} failed ({failed}); the node retries", exc=failed)
    if attempt.ending is Ending.HANDED_BACK:
        raise Retry(f"attempt {attempt.attempt} handed back ({message})", exc=NodeHandedBack(message))
    if attempt.ending is Ending.FENCED:
        drop(task, f"result of attempt {attempt.attempt} dropped: the node is no longer held by it")
    return summary(attempt)


def drop(task: Any, why: str) -> NoReturn:
    """End the task REVOKED: its message (or its result) was dropped. Raises Ignore, so Celery
    acknowledges the message and sends no other end of its own."""
    if task.app.conf.worker_send_task_events:
        try:  # for monitors only: a broker that is away must neither hold nor fail the task
            task.send_event("task-revoked", retry=False, terminated=False, signum=None, expired=False)
        except Exception:
            log.warning("could not send the task-revoked event of %s", task.request.id, exc_info=True)
    raise Ignore(why)
