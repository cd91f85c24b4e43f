"""The one place where errors become HTTP: always `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from orchestrator.errors import (
    Conflict,
    InvalidTransition,
    NotFound,
    OrchestratorError,
    Problem,
    ValidationError,
)

log = logging.getLogger(__name__)

_STATUS: list[tuple[type[OrchestratorError], int]] = [
    (NotFound, 404),
    (Conflict, 409),
    (InvalidTransition, 409),
    (ValidationError, 422),
]


class BadRequest(OrchestratorError):
    """Malformed request syntax (not JSON, not an object)."""

    code = "BAD_REQUEST"


def error_response(status: int, code: str, message: str, problems: list[Problem] | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "details": [p.as_dict() for p in problems or []]}}
    response = jsonify(body)
    response.status_code = status
    return response


def _orchestrator_error(exc: OrchestratorError) -> Response:
    status = 400 if isinstance(exc, BadRequest) else 500
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            status = code
            break
    return error_response(status, exc.code, exc.message, exc.problems)


def _http_error(exc: HTTPException) -> Response:
    code = {
        400: "BAD_REQUEST",
        401: "UNAUTHORIZED",
        404: "NOT_FOUND",
        405: "METHOD_NOT_ALLOWED",
        413: "PAYLOAD_TOO_LARGE",
        415: "UNSUPPORTED_MEDIA_TYPE",
    }.get(exc.code or 500, "HTTP_ERROR")
    return error_response(exc.code or 500, code, exc.description or exc.name)


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error")
    return error_response(500, "INTERNAL_ERROR", "internal error; see the server log")


def init_app(app: Flask) -> None:
    app.register_error_handler(OrchestratorError, _orchestrator_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
