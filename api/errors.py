"""The one place where errors become HTTP: always `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

import logging
from typing import Any

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


def status_of(exc: OrchestratorError) -> int:
    """The HTTP status of an error the product raised on purpose."""
    if isinstance(exc, BadRequest):
        return 400
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def error_body(exc: OrchestratorError) -> dict[str, Any]:
    """`{"code", "message", "details"}`: the value of `error` in every error response."""
    return {"code": exc.code, "message": exc.message, "details": [p.as_dict() for p in exc.problems]}


def _orchestrator_error(exc: OrchestratorError) -> Response:
    return error_response(status_of(exc), exc.code, exc.message, exc.problems)


_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def _http_error(exc: HTTPException) -> Response | HTTPException:
    status = exc.code or 500
    if status < 400:  # a routing redirect is not an error
        return exc
    response = error_response(status, _HTTP_CODES.get(status, "HTTP_ERROR"), exc.description or exc.name)
    # keep what the exception says about the resource: `Allow` of a 405, `WWW-Authenticate` of a 401
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error")
    return error_response(500, "INTERNAL_ERROR", "internal error; see the server log")


def init_app(app: Flask) -> None:
    app.register_error_handler(OrchestratorError, _orchestrator_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
