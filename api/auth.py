"""Auth for `/api/` paths when `ORCH_API_TOKENS` is set: a bearer token, or the UI's session cookie.

- `Authorization: Bearer <token>` authorizes any request.
- The session cookie that the UI's login form gets (`/ui/login`, see `api/ui.py`) authorizes reads
  only (GET, HEAD): the UI never changes anything, and a cookie is what a browser attaches to a
  request another site makes it send. So a cross-site request can never change state with the
  cookie alone, whatever its Content-Type, on top of the cookie being `SameSite=Strict`.
- A token in a URL is never accepted: URLs end up in access logs, proxies and browser history.

The cookie holds an expiry and an HMAC of it keyed by one of the tokens, not the token itself: it
cannot be used as a bearer token, it lapses after `SESSION_S`, and it stops working as soon as its
token is removed from `ORCH_API_TOKENS`.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from flask import Flask, Response, current_app, request

from api.errors import error_response

COOKIE = "orch_session"
SESSION_S = 12 * 3600
_READS = ("GET", "HEAD")
_TOKENS = "orchestrator.api_tokens"


def _mac(token: bytes, expires: int) -> str:
    return hmac.new(token, f"orchestrator-ui-session:{expires}".encode(), hashlib.sha256).hexdigest()


class Tokens:
    """The configured tokens, compared in constant time against every one of them."""

    def __init__(self, tokens: tuple[str, ...]) -> None:
        self._tokens = [t.encode() for t in tokens]

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def matches(self, given: str) -> bool:
        """Whether `given` is one of the tokens (without stopping at the first match)."""
        candidate = given.strip().encode()
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(candidate, token)
        return matched

    def session(self, given: str, now: float | None = None) -> str:
        """The session cookie's value for the token `given` (which must match), valid `SESSION_S`."""
        expires = int((time.time() if now is None else now) + SESSION_S)
        return f"{expires}.{_mac(given.strip().encode(), expires)}"

    def session_valid(self, value: str, now: float | None = None) -> bool:
        """Whether `value` is an unexpired session cookie made with one of the tokens."""
        expires, _, mac = value.partition(".")
        if not (expires.isascii() and expires.isdigit() and len(expires) < 12):
            return False
        if int(expires) <= (time.time() if now is None else now):
            return False
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(mac.encode(), _mac(token, int(expires)).encode())
        return matched


def tokens() -> Tokens:
    """The current app's tokens (empty when the API is open)."""
    return current_app.extensions[_TOKENS]  # type: ignore[no-any-return]


def signed_in() -> bool:
    """Whether this request carries a valid session cookie (always true for an open API)."""
    configured = tokens()
    return not configured or configured.session_valid(request.cookies.get(COOKIE, ""))


def init_app(app: Flask, api_tokens: tuple[str, ...]) -> None:
    configured = app.extensions[_TOKENS] = Tokens(api_tokens)
    if not configured:
        return

    @app.before_request
    def _require_token() -> Response | None:
        if not request.path.startswith("/api/"):
            return None
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and configured.matches(token):
            return None
        session = configured.session_valid(request.cookies.get(COOKIE, ""))
        if session and request.method in _READS:
            return None
        message = "a valid 'Authorization: Bearer <token>' is required"
        if session:
            message += " (the UI's session cookie only authorizes GET and HEAD)"
        response = error_response(401, "UNAUTHORIZED", message)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
