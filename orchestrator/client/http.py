"""The transport: one `requests.Session` that sends a request to the API and turns every failure into
an exception of `errors.py`, and the reader of `text/event-stream` responses.

Settings: the base URL from the argument or `ORCH_API_URL` (default http://127.0.0.1:8080), the
bearer token from the argument or `ORCH_API_TOKEN`. A URL is shown in messages with its password
and query values hidden.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import requests

from orchestrator.client.errors import ApiError, ApiUnreachable, WaitTimeout, api_error
from orchestrator.redaction import redact_url

DEFAULT_URL = "http://127.0.0.1:8080"
# the server writes a keepalive every 5 s: a stream silent for this long is dead
STREAM_SILENCE_S = 60.0
_CONNECT_S = 10.0


def settings_of(
    base_url: str | None, token: str | None, environ: Mapping[str, str] | None = None
) -> tuple[str, str | None]:
    """(base URL, token): the arguments, else `ORCH_API_URL` / `ORCH_API_TOKEN`, else the default
    URL and no token."""
    env = os.environ if environ is None else environ
    url = base_url or env.get("ORCH_API_URL") or DEFAULT_URL
    return url.rstrip("/"), token or env.get("ORCH_API_TOKEN") or None


class Transport:
    """Sends requests to one API; every method raises ApiError or ApiUnreachable instead of
    returning an error."""

    def __init__(self, base_url: str, token: str | None, timeout: float = 30.0) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["User-Agent"] = "orchestrator-client"

    def close(self) -> None:
        self.session.close()

    def unreachable(self, exc: BaseException) -> ApiUnreachable:
        return ApiUnreachable(
            f"no answer from {redact_url(self.base_url)}: {reason(exc)} (is the API running there? "
            "ORCH_API_URL sets where it is)"
        )

    def send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The response of one request, raised as ApiError when its status is 400 or more."""
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.session.request(method, self.base_url + path, **kwargs)
        except requests.RequestException as exc:
            raise self.unreachable(exc) from None
        if response.status_code >= 400:
            raise error_of(response)
        return response

    def call(self, method: str, path: str, body: Any = None, params: Any = None) -> Any:
        """The JSON answer of one request (None for an empty body)."""
        response = self.send(method, path, json=body, params=params)
        try:
            return response.json() if response.content else None
        except ValueError:
            raise ApiError(response.status_code, "NOT_JSON", response.text[:200]) from None

    def events(
        self, path: str, last_id: str | None = None, deadline: float | None = None
    ) -> Iterator[tuple[str, Any, str | None]]:
        """(event, data, id) of an event stream until the server ends it. A connection that breaks
        raises ApiUnreachable; past `deadline` (time.monotonic()), WaitTimeout (checked at every
        line, keepalives included, so a quiet instance cannot hold the caller past it)."""
        headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_id} if last_id else {})}
        silence = STREAM_SILENCE_S
        if deadline is not None:
            silence = max(0.1, min(silence, deadline - time.monotonic() + 0.5))
        response = self.send("GET", path, headers=headers, stream=True, timeout=(_CONNECT_S, silence))
        with response:
            response.encoding = "utf-8"  # an event stream is always UTF-8
            try:
                lines = _until(response.iter_lines(decode_unicode=True), deadline)
                yield from parse_events(lines)
            except requests.RequestException as exc:
                raise self.unreachable(exc) from None


def _until(lines: Iterable[str | bytes], deadline: float | None) -> Iterator[str | bytes]:
    for line in lines:
        if deadline is not None and time.monotonic() > deadline:
            raise WaitTimeout("the instance did not end in time")
        yield line


def parse_events(lines: Iterable[str | bytes]) -> Iterator[tuple[str, Any, str | None]]:
    """(event, data, id) of each event in the lines of a `text/event-stream`, `data` parsed as JSON."""
    name, event_id = "message", None
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if line == "":
            if data:
                yield name, json.loads("\n".join(data)), event_id
            name, data, event_id = "message", [], None
        elif not line.startswith(":"):  # a comment (keepalive)
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value


def reason(exc: BaseException) -> str:
    """The root cause of a failed request in a few words (`Connection refused`, `Name or service not
    known`, `timed out`) instead of the chain of wrappers requests and urllib3 print."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection broke off"
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return str(current.strerror)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo += [e for e in linked if isinstance(e, BaseException)]
    return type(exc).__name__


def error_of(response: requests.Response) -> ApiError:
    """The API's JSON error of a response, as the ApiError subclass of its status."""
    try:
        error = response.json()["error"]
        return api_error(response.status_code, error["code"], error["message"], error.get("details"))
    except (ValueError, KeyError, TypeError):
        return api_error(response.status_code, "HTTP_ERROR", response.text[:200] or response.reason)
