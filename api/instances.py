"""`/api/v1/instances`: create (one or a batch), read, status, nodes and logs."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from api.context import engine
from api.requests import instance_request, json_object
from orchestrator import instances, logs, views
from orchestrator.errors import OrchestratorError
from workers.dispatch import send_schedule

bp = Blueprint("instances", __name__, url_prefix="/api/v1/instances")


def _create(body: Any) -> tuple[dict[str, Any], int]:
    request = instance_request(body)
    created = instances.create_instance(engine(), request)
    if created.created and request.start:
        send_schedule(created.instance_id, request.priority)
    payload = views.instance_summary_by_id(engine(), created.instance_id)
    return payload, 201 if created.created else 200


@bp.post("")
def create() -> tuple[Response, int]:
    payload, status = _create(json_object())
    return jsonify(payload), status


@bp.get("/<instance_id>")
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
    views.status(engine(), instance_id)  # 404 for an unknown instance
    return jsonify({"logs": logs.query(engine(), instance_id)})


__all__ = ["bp", "OrchestratorError"]
