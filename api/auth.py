"""Bearer-token auth for `/api/` paths when `ORCH_API_TOKENS` is set."""

from __future__ import annotations

import hmac

from flask import Flask, Response, request

from api.errors import error_response


def init_app(app: Flask, tokens: tuple[str, ...]) -> None:
    if not tokens:
        return
    expected = [t.encode() for t in tokens]

    @app.before_request
    def _require_token() -> Response | None:
        if not request.path.startswith("/api/"):
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        given = token.strip().encode()
        # compare against every token in constant time, without stopping at the first match
        matched = False
        for candidate in expected:
            matched |= hmac.compare_digest(given, candidate)
        if scheme.lower() != "bearer" or not matched:
            response = error_response(
                401, "UNAUTHORIZED", "a valid 'Authorization: Bearer <token>' is required"
            )
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return None
