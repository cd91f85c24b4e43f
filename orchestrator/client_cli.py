"""`orchestrator submit | status | logs | definitions push`: an HTTP client of the API.

Reads `ORCH_API_URL` (default http://127.0.0.1:8080) and `ORCH_API_TOKEN`. Exit codes
(`status_text.py`): 0 done (with `--watch`, every instance completed; `status`: completed or not
ended yet), 1 failed, 2 the request failed (the API's error is printed, or the one line saying why
it did not answer) or the command line is wrong, 3 cancelled.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import requests

from orchestrator import status_text
from orchestrator.redaction import redact_url
from orchestrator.status_text import EXIT_ERROR

_LOG_PAGE = 1000


class ApiError(Exception):
    """A request that did not succeed: the API's error (status, code, message, details) or no answer."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []

    def __str__(self) -> str:
        head = f"{self.status} {self.code}" if self.status else self.code
        lines = [f"error: {head}: {self.message}"]
        lines += [f"  {d.get('field')}: {d.get('message')} ({d.get('code')})" for d in self.details]
        return "\n".join(lines)


class UsageError(Exception):
    """A command line that cannot be sent: bad JSON, an unreadable file, a malformed tag."""


class ApiClient:
    """Calls the API; every method raises ApiError instead of returning an error."""

    def __init__(self, base_url: str | None = None, token: str | None = None, timeout: float = 30) -> None:
        self.base_url = (base_url or os.environ.get("ORCH_API_URL") or "http://127.0.0.1:8080").rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        token = token or os.environ.get("ORCH_API_TOKEN")
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.base_url + path, **kwargs)
        except requests.RequestException as exc:
            raise ApiError(
                0,
                "UNREACHABLE",
                f"no answer from {redact_url(self.base_url)}: {_reason(exc)} (is the API running there? "
                "ORCH_API_URL sets where it is)",
            ) from None
        if response.status_code >= 400:
            raise _error_of(response)
        return response

    def call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        """The JSON answer of one request."""
        response = self._send(method, path, json=body, params=params, timeout=self.timeout)
        try:
            return response.json() if response.content else None
        except ValueError:
            raise ApiError(response.status_code, "NOT_JSON", response.text[:200]) from None

    def events(self, instance_id: str, last_id: str | None = None) -> Iterator[tuple[str, Any, str | None]]:
        """(event, data, id) from the instance's Server-Sent Events until the server ends the stream."""
        headers = {"Last-Event-ID": last_id} if last_id else {}
        path = f"/api/v1/instances/{instance_id}/events"
        # the server writes a keepalive every few seconds: a stream silent for a minute is dead
        with self._send("GET", path, headers=headers, stream=True, timeout=(10, 60)) as response:
            response.encoding = "utf-8"  # an event stream is always UTF-8
            yield from parse_events(response.iter_lines(decode_unicode=True))


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


def _reason(exc: BaseException) -> str:
    """The root cause of a failed request in a few words (`Connection refused`, `Name or service not
    known`, `timed out`) instead of the chain of wrappers requests and urllib3 print."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
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


def _error_of(response: requests.Response) -> ApiError:
    try:
        error = response.json()["error"]
        return ApiError(response.status_code, error["code"], error["message"], error.get("details"))
    except (ValueError, KeyError, TypeError):
        return ApiError(response.status_code, "HTTP_ERROR", response.text[:200] or response.reason)


def add_commands(sub: Any) -> None:
    submit = sub.add_parser("submit", help="start an instance of a workflow (several with several --input)")
    submit.add_argument("workflow")
    submit.add_argument(
        "--input",
        action="append",
        help="the input as JSON, or @file.json; repeat to start one instance per input",
    )
    submit.add_argument("--version")
    submit.add_argument("--external-id", help="idempotency key: a repeat returns the existing instance")
    submit.add_argument("--priority", choices=["low", "normal", "high", "critical"])
    submit.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument("--watch", action="store_true", help="show live progress until the instances end")
    status = sub.add_parser(
        "status", help="the status of an instance: a summary, and an exit status scripts can test"
    )
    status.add_argument("instance_id")
    status.add_argument("--json", action="store_true", help="print the API's status object as it is")
    logs = sub.add_parser("logs", help="the execution log of an instance")
    logs.add_argument("instance_id")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the instance ends")
    definitions = sub.add_parser("definitions", help="workflow definitions")
    definitions.add_argument("action", choices=["push"])
    definitions.add_argument("file")


def run(args: argparse.Namespace) -> int:
    """Run one client command; prints the API's error and returns 2 when a request fails."""
    client = ApiClient()
    try:
        if args.command == "submit":
            return _submit(client, args)
        if args.command == "status":
            return _status(client, args.instance_id, args.json)
        if args.command == "logs":
            return _logs(client, args.instance_id, args.follow)
        if args.command == "definitions":
            stored = client.call("POST", "/api/v1/definitions", _json_file(args.file, "definition file"))
            print(f"{stored['name']} {stored['version']} stored (id {stored['id']})")
            return 0
    except ApiError as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    raise AssertionError(f"unknown command {args.command}")


def _status(client: ApiClient, instance_id: str, raw: bool) -> int:
    status = client.call("GET", f"/api/v1/instances/{instance_id}/status")
    if raw:
        print(json.dumps(status, indent=2))
    else:
        instance = client.call("GET", f"/api/v1/instances/{instance_id}")
        print(status_text.summary(status, instance))
    return status_text.exit_code(str(status["status"]))


def _json_file(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} {path} is not valid JSON: {exc}") from None


def _json_argument(text: str, option: str) -> Any:
    """The option's value as JSON, or the JSON in a file for `@path`."""
    if text.startswith("@"):
        return _json_file(text[1:], f"{option} file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{option} is not valid JSON: {exc}") from None


def _submit(client: ApiClient, args: argparse.Namespace) -> int:
    inputs = [_json_argument(text, "--input") for text in (args.input or ["{}"])]
    if args.external_id and len(inputs) > 1:
        raise UsageError("--external-id names one instance; give one --input with it")
    tags = {}
    for tag in args.tag:
        key, sep, value = tag.partition("=")
        if not sep:
            raise UsageError(f"--tag {tag!r} is not KEY=VALUE")
        tags[key] = value
    base: dict[str, Any] = {"workflow": args.workflow}
    for field, value in (("version", args.version), ("priority", args.priority), ("tags", tags)):
        if value:
            base[field] = value
    if len(inputs) == 1:
        body = {**base, "input": inputs[0], **({"externalId": args.external_id} if args.external_id else {})}
        ids = [client.call("POST", "/api/v1/instances", body)["id"]]
        refused = 0
    else:
        answer = client.call(
            "POST", "/api/v1/instances/batch", {"instances": [{**base, "input": i} for i in inputs]}
        )
        ids, refused = [], 0
        for result in answer["results"]:
            if "instance" in result:
                ids.append(result["instance"]["id"])
            else:
                refused += 1
                error = result["error"]
                print(
                    ApiError(result["status"], error["code"], error["message"], error["details"]),
                    file=sys.stderr,
                )
    for instance_id in ids:
        print(instance_id)
    sys.stdout.flush()
    if not args.watch or not ids:
        return EXIT_ERROR if refused else 0
    from orchestrator.progress import watch

    finals = watch(client, ids)
    if refused:
        return EXIT_ERROR
    return status_text.worst_exit_code(finals.values())


def _print_log(line: dict[str, Any]) -> None:
    node = f" [{line['nodeId']}]" if line.get("nodeId") else ""
    print(f"{line['timestamp']} {line['level'].upper():7}{node} {line['message']}", flush=True)


def _logs(client: ApiClient, instance_id: str, follow: bool) -> int:
    if not follow:
        after = 0
        while True:
            params = {"afterId": after, "limit": _LOG_PAGE}
            lines = client.call("GET", f"/api/v1/instances/{instance_id}/logs", params=params)["logs"]
            for line in lines:
                _print_log(line)
                after = max(after, line["id"])
            if len(lines) < _LOG_PAGE:
                return 0
    # The event stream sends each line once, in commit order, and ends when the instance does;
    # after a dropped connection it resumes after the last line printed. An API that does not answer
    # at all, or an unknown instance, is an error at once (asked first), not a reconnect for ever.
    client.call("GET", f"/api/v1/instances/{instance_id}/status")
    last_id: str | None = None
    while True:
        try:
            for name, data, event_id in client.events(instance_id, last_id):
                if name == "log":
                    _print_log(data)
                    last_id = event_id or last_id
                elif name == "end":
                    return 0
        except (ApiError, requests.RequestException) as exc:
            if isinstance(exc, ApiError) and exc.status and exc.status < 500:
                raise
            print(f"(stream interrupted: {exc}; reconnecting)", file=sys.stderr)
        time.sleep(1)  # the stream broke off before the end: reconnect
