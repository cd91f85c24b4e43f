"""`/api/v1/instances`: create (one or a batch), list, read, status, nodes and logs."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify
from flask.blueprints import BlueprintSetupState
from werkzeug.routing import BaseConverter

from api import query
from api.context import engine, settings
from api.errors import error_body, status_of
from api.requests import instance_request, json_object, names_as_sent, rename_as_sent
from orchestrator import delayed_start, egress, instances, logs, queries, views
from orchestrator.errors import OrchestratorError, Problem, ValidationError
from orchestrator.models import utcnow
from orchestrator.states import InstanceStatus
from workers.dispatch import send_schedule

log = logging.getLogger(__name__)
bp = Blueprint("instances", __name__, url_prefix="/api/v1/instances")

MAX_BATCH = 100


class InstanceIdConverter(BaseConverter):
    """A path segment that can be an instance id: not `batch`, so `GET /instances/batch` is a 405 with
    `Allow: POST` (what the path does), not a lookup of an instance named "batch"."""

    regex = "(?!batch$)[^/]+"


@bp.record_once
def _register_converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters["instance_id"] = InstanceIdConverter


def _create(body: Any) -> tuple[dict[str, Any], int]:
    """Create (or find, by externalId) one instance and enqueue `schedule`: (summary, 201 or 200)."""
    request = instance_request(body)
    _check_callback_url(request.callback_url)
    try:
        created = instances.create_instance(engine(), request)
    except OrchestratorError as exc:  # name fields as the client did: `inputData.email`, `workflowName`
        exc.problems = rename_as_sent(exc.problems, names_as_sent(body))
        raise
    # A repeat of a request whose first try died between its commit and its enqueue finds the
    # instance still pending: enqueue again, `schedule` is idempotent.
    if request.start and (created.created or created.status == InstanceStatus.PENDING.value):
        _schedule(created.instance_id, request)
    payload = views.created_summary(engine(), created)
    return payload, 201 if created.created else 200


def _schedule(instance_id: str, request: instances.InstanceRequest) -> None:
    """Send `schedule` now, or for a startAt to come with a countdown if it is close; a later one is
    started by the sweep (`delayed_start`)."""
    delay = 0.0 if request.start_at is None else (request.start_at - utcnow()).total_seconds()
    if delay <= 0:
        send_schedule(instance_id, request.priority)
    elif delay <= delayed_start.PROMPT_START_UP_TO:
        send_schedule(instance_id, request.priority, countdown=delay)


def _check_callback_url(url: str | None) -> None:
    """An early 422 for a callback URL whose host is a literal address the egress policy denies;
    a host name is judged where the delivery connects (orchestrator/outbound.py)."""
    reason = egress.literal_denial(url, egress.policy_of(settings())) if url else None
    if reason is not None:
        raise ValidationError("invalid instance request", [Problem("callbackUrl", reason, "EGRESS_DENIED")])


@bp.post("")
def create() -> tuple[Response, int]:
    payload, status = _create(json_object())
    return jsonify(payload), status


@bp.post("/batch")
def create_batch() -> Response:
    """Each item is created on its own: one bad item gets its own error and does not stop the rest.
    The response is 200 whatever the items' outcomes; each result carries its own HTTP status."""
    body = json_object()
    items = body.get("instances")
    problems = [Problem(key, "unknown field", "VALIDATION_ERROR") for key in body if key != "instances"]
    if not isinstance(items, list):
        problems.append(Problem("instances", "must be an array of instance requests", "TYPE_MISMATCH"))
        items = []
    elif not 1 <= len(items) <= MAX_BATCH:
        problems.append(Problem("instances", f"must hold 1 to {MAX_BATCH} items", "VALIDATION_ERROR"))
    if problems:
        raise ValidationError("invalid batch request", problems)
    results: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            payload, status = _create(item)
            results.append({"index": index, "status": status, "instance": payload})
        except OrchestratorError as exc:
            results.append({"index": index, "status": status_of(exc), "error": error_body(exc)})
        except Exception:  # a failure of the store for one item must not hide what the others did
            log.exception("batch item %s failed", index)
            error = {"code": "INTERNAL_ERROR", "message": "internal error; see the server log", "details": []}
            results.append({"index": index, "status": 500, "error": error})
    return jsonify({"results": results})


@bp.get("")
def list_all() -> Response:
    where = query.instance_filter()
    limit, cursor = query.instance_page()
    page = queries.list_instances(engine(), where, limit, cursor)
    next_cursor = page.next_cursor.encode() if page.next_cursor else None
    return jsonify({"instances": page.items, "nextCursor": next_cursor})


@bp.get("/<instance_id:instance_id>")
def one(instance_id: str) -> Response:
    return jsonify(views.instance(engine(), instance_id))


@bp.get("/<instance_id>/status")
def status(instance_id: str) -> Response:
    return jsonify(views.status(engine(), instance_id))


@bp.get("/<instance_id>/nodes")
def nodes(instance_id: str) -> Response:
    return jsonify({"nodes": views.nodes(engine(), instance_id)})


@bp.get("/<instance_id>/logs")
def instance_logs(instance_id: str) -> Response:
    filters = query.log_filter()
    views.instance_summary_by_id(engine(), instance_id)  # 404 for an unknown instance
    return jsonify({"logs": logs.query(engine(), instance_id, **filters)})
