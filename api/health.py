"""`/health`: 200 when the database and the broker answer, 503 naming what does not."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from api.context import engine

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> tuple[Response, int]:
    checks: dict[str, str] = {}
    try:
        with engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure is an unhealthy answer, never a 500
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        from workers.app import app as celery_app

        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return jsonify({"status": "ok" if healthy else "unavailable", "checks": checks}), 200 if healthy else 503
