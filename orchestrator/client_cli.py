"""`orchestrator submit | status | logs | signal | definitions push | schedules ... | limits ...`: the
API's client commands, on `orchestrator.client`.

Reads `ORCH_API_URL` (default http://127.0.0.1:8080) and `ORCH_API_TOKEN`. Exit codes
(`status_text.py`): 0 done (with `--watch`, every instance completed; `status`: completed or not
ended yet), 1 failed, 2 the request failed (the API's error is printed, or the one line saying why
it did not answer) or the command line is wrong, 3 cancelled.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from orchestrator import limit_cli, schedule_cli, status_text
from orchestrator.client import ApiUnreachable, Client, ClientError, LogLine, Run
from orchestrator.client.client import instance_request
from orchestrator.client.http import parse_events as parse_events  # where the tests read streams with
from orchestrator.status_text import EXIT_ERROR

_LOG_PAGE = 1000


class UsageError(Exception):
    """A command line that cannot be sent: bad JSON, an unreadable file, a malformed tag."""


def describe(exc: ClientError) -> str:
    """The lines the commands print for a failed request: `error: 404 NOT_FOUND: message` and one
    line per detail, or `error: UNREACHABLE: no answer from ...`."""
    if isinstance(exc, ApiUnreachable):
        return f"error: {exc.code}: {exc.message}"
    return f"error: {exc}"


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
    submit.add_argument(
        "--start-at", metavar="TIME", help="ISO 8601 (UTC without an offset): stay pending until then"
    )
    submit.add_argument("--watch", action="store_true", help="show live progress until the instances end")
    status = sub.add_parser(
        "status", help="the status of an instance: a summary, and an exit status scripts can test"
    )
    status.add_argument("instance_id")
    status.add_argument("--json", action="store_true", help="print the API's status object as it is")
    logs = sub.add_parser("logs", help="the execution log of an instance")
    logs.add_argument("instance_id")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the instance ends")
    signal = sub.add_parser(
        "signal",
        help="send a signal to an instance: it completes the wait node waiting for it, or is kept "
        "until that node is reached",
    )
    signal.add_argument("instance_id")
    signal.add_argument("name", help="the signal's name (a wait node's `signal`)")
    signal.add_argument(
        "--data", help="the signal's data as JSON, or @file.json: the node's output (default null)"
    )
    definitions = sub.add_parser("definitions", help="workflow definitions")
    definitions.add_argument("action", choices=["push"])
    definitions.add_argument("file")
    schedule_cli.add_commands(sub)
    limit_cli.add_commands(sub)


def run(args: argparse.Namespace) -> int:
    """Run one client command; prints the API's error and returns 2 when a request fails."""
    with Client() as client:
        try:
            if args.command == "submit":
                return _submit(client, args)
            if args.command == "status":
                return _status(client.run(args.instance_id), args.json)
            if args.command == "logs":
                return _logs(client.run(args.instance_id), args.follow)
            if args.command == "signal":
                return _signal(client, args)
            if args.command == "definitions":
                stored = client.definitions.put(_json_file(args.file, "definition file"))
                print(f"{stored.name} {stored.version} stored (id {stored.id})")
                return 0
            if args.command == "schedules":
                given = _json_argument(args.input, "--input") if getattr(args, "input", None) else None
                return schedule_cli.run(client, args, _tags(getattr(args, "tag", [])), given)
            if args.command == "limits":
                return limit_cli.run(client, args)
        except ClientError as exc:
            print(describe(exc), file=sys.stderr)
            return EXIT_ERROR
        except (UsageError, limit_cli.UsageError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
    raise AssertionError(f"unknown command {args.command}")


def _status(instance: Run, raw: bool) -> int:
    status = instance.status()
    if raw:
        print(json.dumps(status.raw, indent=2))
    else:
        print(status_text.summary(status.raw, instance.get().raw))
    return status_text.exit_code(status.status)


def _signal(client: Client, args: argparse.Namespace) -> int:
    data = None if args.data is None else _json_argument(args.data, "--data")
    sent = client.signal(args.instance_id, args.name, data)
    if sent.delivered:
        print(f"signal {sent.signal} delivered: node {sent.node_id} completed")
    else:
        print(f"signal {sent.signal} stored until node {sent.node_id} is reached")
    return 0


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


def _tags(pairs: list[str]) -> dict[str, str]:
    tags = {}
    for tag in pairs:
        key, sep, value = tag.partition("=")
        if not sep:
            raise UsageError(f"--tag {tag!r} is not KEY=VALUE")
        tags[key] = value
    return tags


def _submit(client: Client, args: argparse.Namespace) -> int:
    inputs = [_json_argument(text, "--input") for text in (args.input or ["{}"])]
    if args.external_id and len(inputs) > 1:
        raise UsageError("--external-id names one instance; give one --input with it")
    options = {
        "version": args.version,
        "priority": args.priority,
        "tags": _tags(args.tag),
        "start_at": args.start_at,
    }
    refused = 0
    if len(inputs) == 1:
        ids = [client.submit(args.workflow, inputs[0], external_id=args.external_id, **options).id]
    else:
        bodies = [instance_request(args.workflow, given, **options) for given in inputs]
        ids = []
        for result in client.instances.create_many(bodies):
            if result.instance is not None:
                ids.append(result.instance.id)
            else:
                refused += 1
                assert result.error is not None
                print(describe(result.error), file=sys.stderr)
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


def _print_log(line: LogLine) -> None:
    node = f" [{line.node_id}]" if line.node_id else ""
    print(f"{line.raw['timestamp']} {line.level.upper():7}{node} {line.message}", flush=True)


def _interrupted(exc: ClientError) -> None:
    print(f"(stream interrupted: {describe(exc).removeprefix('error: ')}; reconnecting)", file=sys.stderr)


def _logs(instance: Run, follow: bool) -> int:
    if not follow:
        after = 0
        while True:
            lines = instance.logs(after_id=after, limit=_LOG_PAGE)
            for line in lines:
                _print_log(line)
                after = max(after, line.id)
            if len(lines) < _LOG_PAGE:
                return 0
    # The event stream sends each line once, in commit order, and ends when the instance does;
    # after a dropped connection it resumes after the last line printed. An API that does not answer
    # at all, or an unknown instance, is an error at once (asked first), not a reconnect for ever.
    instance.status()
    for event in instance.events(on_break=_interrupted):
        if event.log is not None:
            _print_log(event.log)
    return 0
