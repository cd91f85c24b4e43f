"""The built-in executors on a real worker: noop, sleep, log and a real HTTP request."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.acceptance.helpers import define, log_messages, nodes, start


class _Service(BaseHTTPRequestHandler):
    calls: list[str] = []

    def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
        _Service.calls.append(self.path)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status = {"/ok": 200, "/missing": 404, "/broken": 503}[self.path]
        payload = json.dumps({"echo": body, "path": self.path}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


def _http_workflow(name: str, url: str) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1.0.0",
        "nodes": [
            {"id": "wait", "type": "task", "executor": "sleep", "config": {"ms": 50}},
            {
                "id": "call",
                "type": "task",
                "executor": "http",
                "dependsOn": ["wait"],
                "retries": 1,
                "retryDelay": 10,
                "config": {"url": url, "method": "POST", "json": {"who": "${input.who}"}, "timeout": 5000},
            },
            {
                "id": "say",
                "type": "task",
                "executor": "log",
                "dependsOn": ["call"],
                "config": {"message": "answered ${nodes.call.output.status}"},
            },
        ],
    }


@pytest.mark.egress_allow("127.0.0.1/32")  # production defaults deny loopback: the service is local
def test_http_sleep_and_log_executors_work_and_http_errors_are_classified(db, live_api, processes):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Service)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        processes.worker("w1")
        runs = {}
        for path in ("ok", "missing", "broken"):
            define(live_api, _http_workflow(f"http-{path}", f"{base}/{path}"))
            runs[path] = start(live_api, f"http-{path}", {"who": "ann"})
        statuses = {path: live_api.wait_status(i)["status"] for path, i in runs.items()}

        assert statuses == {"ok": "completed", "missing": "failed", "broken": "failed"}
        call = nodes(db, runs["ok"])["call"]
        assert call.output["status"] == 200 and call.output["body"] == {"echo": {"who": "ann"}, "path": "/ok"}
        assert nodes(db, runs["ok"])["wait"].output == {"slept": 0.05}
        assert "answered 200" in log_messages(db, runs["ok"], "say")
        # a 404 is not retried; a 503 is (retries: 1)
        assert (nodes(db, runs["missing"])["call"].attempt, nodes(db, runs["broken"])["call"].attempt) == (
            1,
            2,
        )
        assert _Service.calls.count("/missing") == 1 and _Service.calls.count("/broken") == 2
    finally:
        server.shutdown()
