"""`/api/v1/instances/<id>/start|pause|resume|cancel|retry`: each answers 200 with the new status object.

An action the instance's state does not allow is 409 INVALID_TRANSITION; an unknown instance is 404.
What an action released (nodes to run, an ended instance to report) is enqueued after its commit.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.context import engine
from api.requests import optional_object
from orchestrator import lifecycle, views
from orchestrator.outcomes import Outcome
from workers.tasks import follow_up

bp = Blueprint("lifecycle", __name__, url_prefix="/api/v1/instances")


def _answer(instance_id: str, outcome: Outcome) -> Response:
    follow_up(outcome)
    return jsonify(views.status(engine(), instance_id))


@bp.post("/<instance_id>/start")
def start(instance_id: str) -> Response:
    """Start an instance created with `start: false`."""
    optional_object({})
    return _answer(instance_id, lifecycle.start(engine(), instance_id))


@bp.post("/<instance_id>/pause")
def pause(instance_id: str) -> Response:
    optional_object({})
    return _answer(instance_id, lifecycle.pause(engine(), instance_id))


@bp.post("/<instance_id>/resume")
def resume(instance_id: str) -> Response:
    optional_object({})
    return _answer(instance_id, lifecycle.resume(engine(), instance_id))


@bp.post("/<instance_id>/cancel")
def cancel(instance_id: str) -> Response:
    """Optional body `{"reason": "..."}`, recorded in the instance's error."""
    body = optional_object({"reason": str})
    reason = str(body.get("reason") or "cancelled on request")[:1024]
    return _answer(instance_id, lifecycle.cancel(engine(), instance_id, reason))


@bp.post("/<instance_id>/retry")
def retry(instance_id: str) -> Response:
    """Optional body `{"fromNode": "...", "all": false}`: also rerun that node and everything
    downstream of it; `all`: a map node rerun runs all its items, not only those that did not complete."""
    body = optional_object({"fromNode": str, "all": bool})
    outcome = lifecycle.retry(engine(), instance_id, body.get("fromNode"), bool(body.get("all", False)))
    return _answer(instance_id, outcome)
