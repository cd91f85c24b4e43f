"""A local HTTP endpoint that records the callbacks POSTed to it, failing the first ones on request."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any


class CallbackServer:
    """`with CallbackServer(fail_first=1) as hooks:` serves on a free port until the block ends;
    `hooks.url` takes POSTs, `hooks.received` holds the bodies of those answered 200."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.failures_left = fail_first
        self.posts = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.posts += 1
                if server.failures_left > 0:
                    server.failures_left -= 1
                    self.send_response(503)
                else:
                    server.received.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._http = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_port}/hook"

    def __enter__(self) -> CallbackServer:
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
