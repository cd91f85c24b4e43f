"""`orchestrator submit | status | logs | definitions push`: an HTTP client of the API.

Reads `ORCH_API_URL` (default http://127.0.0.1:8080) and `ORCH_API_TOKEN`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import requests

FINISHED = ("completed", "failed", "cancelled")


class ApiClient:
    def __init__(self, base_url: str | None = None, token: str | None = None) -> None:
        self.base_url = (base_url or os.environ.get("ORCH_API_URL") or "http://127.0.0.1:8080").rstrip("/")
        self.session = requests.Session()
        token = token or os.environ.get("ORCH_API_TOKEN")
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.session.request(method, self.base_url + path, json=body, timeout=30)
        data = response.json() if response.content else None
        if response.status_code >= 400:
            error = (data or {}).get("error", {}) if isinstance(data, dict) else {}
            details = "; ".join(f"{d.get('field')}: {d.get('message')}" for d in error.get("details", []))
            raise SystemExit(
                f"error {response.status_code} {error.get('code', '')}: "
                f"{error.get('message', response.text)}{' (' + details + ')' if details else ''}"
            )
        return data


def add_commands(sub: Any) -> None:
    submit = sub.add_parser("submit", help="start an instance of a workflow")
    submit.add_argument("workflow")
    submit.add_argument("--input", default="{}", help="the input as JSON")
    submit.add_argument("--version")
    submit.add_argument("--external-id")
    submit.add_argument("--priority", choices=["low", "normal", "high", "critical"])
    submit.add_argument("--watch", action="store_true", help="show live progress until the instance ends")
    status = sub.add_parser("status", help="the status of an instance")
    status.add_argument("instance_id")
    logs = sub.add_parser("logs", help="the execution log of an instance")
    logs.add_argument("instance_id")
    logs.add_argument("--follow", action="store_true")
    definitions = sub.add_parser("definitions", help="workflow definitions")
    definitions.add_argument("action", choices=["push"])
    definitions.add_argument("file")


def run(args: argparse.Namespace) -> int:
    client = ApiClient()
    if args.command == "submit":
        return _submit(client, args)
    if args.command == "status":
        print(json.dumps(client.call("GET", f"/api/v1/instances/{args.instance_id}/status"), indent=2))
        return 0
    if args.command == "logs":
        return _logs(client, args.instance_id, args.follow)
    if args.command == "definitions":
        with open(args.file, encoding="utf-8") as handle:
            body = json.load(handle)
        stored = client.call("POST", "/api/v1/definitions", body)
        print(f"{stored['name']} {stored['version']} stored")
        return 0
    raise SystemExit(f"unknown command {args.command}")


def _submit(client: ApiClient, args: argparse.Namespace) -> int:
    try:
        data = json.loads(args.input)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--input is not valid JSON: {exc}") from None
    body: dict[str, Any] = {"workflow": args.workflow, "input": data}
    if args.version:
        body["version"] = args.version
    if args.external_id:
        body["externalId"] = args.external_id
    if args.priority:
        body["priority"] = args.priority
    created = client.call("POST", "/api/v1/instances", body)
    print(created["id"])
    if not args.watch:
        return 0
    from orchestrator.progress import watch

    final = watch(client, created["id"])
    return 0 if final == "completed" else 1


def _logs(client: ApiClient, instance_id: str, follow: bool) -> int:
    after = 0
    while True:
        lines = client.call("GET", f"/api/v1/instances/{instance_id}/logs?afterId={after}")["logs"]
        for line in lines:
            after = max(after, line["id"])
            node = f" [{line['nodeId']}]" if line.get("nodeId") else ""
            print(f"{line['timestamp']} {line['level'].upper():7}{node} {line['message']}")
        if not follow:
            return 0
        status = client.call("GET", f"/api/v1/instances/{instance_id}/status")["status"]
        if status in FINISHED and not lines:
            return 0
        time.sleep(0.5)
        sys.stdout.flush()
