"""`/api/v1/limits`: every concurrency and rate limit, its slots in use and what waits for it; and an
executor's limits set per deployment through the API (`PUT|DELETE /api/v1/limits/<executor>`,
`orchestrator/limit_overrides.py`)."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify, request

from api import query
from api.context import engine
from api.requests import json_body
from orchestrator import limit_overrides, limit_report
from orchestrator.outcomes import Outcome
from workers.tasks import follow_up

bp = Blueprint("limits", __name__, url_prefix="/api/v1/limits")


def init_app(app: Flask) -> None:
    """Before a request that may send messages, read the API's overrides again if the copy is stale:
    a node's limits are worked out from it (`limits.node_gates`)."""

    @app.before_request
    def _fresh_overrides() -> None:
        if request.method not in ("GET", "HEAD", "OPTIONS") and request.path.startswith("/api/"):
            limit_overrides.refresh_if_stale(app.extensions["orchestrator.engine"])


@bp.get("")
def list_page() -> Response:
    """`?limit=&cursor=`: a page of limits by name then kind; `nextCursor` asks for the next one."""
    limit, after = query.limit_page()
    limit_overrides.load(engine())
    page, next_after = limit_report.page(engine(), limit, after)
    cursor = None if next_after is None else query.limit_cursor(next_after)
    return jsonify({"limits": page, "nextCursor": cursor})


@bp.put("/<name>")
def put(name: str) -> Response:
    """Override the executor's concurrency and/or rate (each field given wins over ORCH_LIMITS and
    the code; null removes that kind of limit); a raised limit lets waiting nodes go at once."""
    found, dispatches = limit_overrides.put(engine(), name, json_body())
    follow_up(Outcome(dispatches))
    return jsonify(found)


@bp.delete("/<name>")
def remove(name: str) -> Response:
    """Drop the executor's override (404 if none): ORCH_LIMITS and the code apply again."""
    found, dispatches = limit_overrides.clear(engine(), name)
    follow_up(Outcome(dispatches))
    return jsonify(found)
