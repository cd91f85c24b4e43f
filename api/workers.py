"""`/api/v1/workers`: every worker seen, whether it is alive, and the nodes it runs now."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.context import engine, settings
from orchestrator import workers_registry

bp = Blueprint("workers", __name__, url_prefix="/api/v1/workers")


@bp.get("")
def list_all() -> Response:
    return jsonify({"workers": workers_registry.list_workers(engine(), settings().heartbeat_timeout)})
