"""`/api/v1/limits`: every concurrency and rate limit, its slots in use and what waits for it."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.context import engine
from orchestrator import limit_report

bp = Blueprint("limits", __name__, url_prefix="/api/v1/limits")


@bp.get("")
def list_all() -> Response:
    return jsonify({"limits": limit_report.report(engine())})
