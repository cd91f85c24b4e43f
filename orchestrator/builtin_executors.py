"""Executors every installation has: `noop`, `sleep`, `log` and `http`."""

from __future__ import annotations

import time
from typing import Any

import requests

from orchestrator import egress, outbound, storable
from orchestrator.context import ExecutionContext
from orchestrator.errors import EgressDenied, Fatal, Retryable, StopRequested
from orchestrator.executors import executor
from orchestrator.redaction import redact_text, redact_url

MAX_REDIRECTS = 5
STEP_S = 0.1  # how often `sleep` looks at `should_stop`


@executor("noop")
def noop(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Returns its config as its output (handy for wiring and benchmarks)."""
    return dict(config)


@executor("sleep")
def sleep(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Sleeps `seconds` (or `ms`), in short steps so a pause, cancel or shutdown stops it early.

    It records how long it has slept as its checkpoint every `checkpointEvery` seconds (default 1;
    `checkpoint: true`, the older spelling, after every step) and when it is asked to stop; a later
    attempt (after a pause, a shutdown or a crash) sleeps only what is left.
    """
    total = float(config.get("seconds", float(config.get("ms", 0)) / 1000))
    every = STEP_S if config.get("checkpoint") is True else float(config.get("checkpointEvery", 1.0))
    slept = float((ctx.last_checkpoint or {}).get("slept", 0.0))
    if slept:
        ctx.log.info(f"resuming at {slept:.2f}s of {total:g}s", {"resumedFrom": slept})
    began, start, saved = time.monotonic(), slept, slept
    while slept < total:
        if ctx.should_stop:
            ctx.checkpoint({"slept": slept})
            raise StopRequested(f"stopped after {slept:.2f}s of {total:g}s")
        time.sleep(min(STEP_S, total - slept))
        slept = min(total, start + time.monotonic() - began)
        if every > 0 and slept - saved >= every and slept < total:
            ctx.checkpoint({"slept": slept})
            saved = slept
    return {"slept": total}


@executor("log")
def log(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Writes `message` to the execution log at `level` (info by default)."""
    level = str(config.get("level", "info"))
    message = str(config.get("message", ""))
    writer = {"warning": ctx.log.warning, "error": ctx.log.error, "debug": ctx.log.debug}.get(
        level, ctx.log.info
    )
    writer(message, config.get("details"))
    return {"logged": message}


@executor("http")
def http(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """A real HTTP request: `url`, `method`, `headers`, `json` or `body`, `timeout` (ms, default
    30,000) and `expectStatus` (a list; default any 2xx). 5xx and connection errors are retryable,
    other unexpected statuses are not. Every connection, redirects included (at most
    `MAX_REDIRECTS`), must be allowed by the egress policy: a denied one fails the node at once with
    code `EGRESS_DENIED`. Messages show the URL redacted (no password, no query values)."""
    url = config.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise Fatal("http: config.url must be an http(s) URL")
    shown = redact_url(url)
    timeout = float(config.get("timeout", 30_000)) / 1000
    if ctx.should_stop:  # a request once sent is not interrupted; one not yet sent waits for the next attempt
        raise StopRequested(f"http: {shown} not sent: asked to stop")
    try:
        with outbound.session(egress.current_policy(), max_redirects=MAX_REDIRECTS) as session:
            response = session.request(
                str(config.get("method", "GET")).upper(),
                url,
                headers=config.get("headers"),
                json=config.get("json"),
                data=config.get("body"),
                timeout=timeout,
                stream=True,  # read below under a cap: an answer of gigabytes must not fill the worker
            )
            content = _capped_body(response, shown)
    except EgressDenied as exc:
        raise Fatal(f"http: {shown}: {exc.message}", code=exc.code) from None
    except requests.TooManyRedirects:
        raise Fatal(f"http: {shown}: more than {MAX_REDIRECTS} redirects") from None
    except requests.RequestException as exc:
        raise Retryable(f"http: {type(exc).__name__}: {redact_text(str(exc))}") from None
    expected = config.get("expectStatus")
    ok = response.status_code in expected if isinstance(expected, list) else 200 <= response.status_code < 300
    if not ok:
        message = f"http: {response.request.method} {shown} answered {response.status_code}"
        if response.status_code >= 500:
            raise Retryable(message, status=response.status_code)
        raise Fatal(message, status=response.status_code)
    response._content = content  # the capped body, for requests' own decoding below
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return {"status": response.status_code, "headers": dict(response.headers), "body": body}


def _capped_body(response: requests.Response, shown: str) -> bytes:
    """The response body, read in chunks; Fatal past `storable.MAX_BYTES` (no output could hold it)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > storable.MAX_BYTES:
            response.close()
            too_big = f"http: {shown}: the answer is over {storable.MAX_BYTES} bytes"
            raise Fatal(too_big, code="OUTPUT_NOT_STORABLE")
        chunks.append(chunk)
    return b"".join(chunks)
