"""A local HTTP listener that records every request it gets: the target of egress tests, which must
show that a denied call reached nothing. It listens on a loopback address only."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Listener:
    """`with Listener("127.0.0.2") as target:` serves on a free port (or `port`) of that loopback
    address until the block ends. Every request is recorded in `requests` as (method, path). It
    answers 200 with `{"hello": "from <host>"}`, or, with `redirect_to`, 302 to that URL, or, with
    `body_bytes`, 200 with that many bytes of text."""

    def __init__(
        self, host: str = "127.0.0.1", redirect_to: str | None = None, port: int = 0, body_bytes: int = 0
    ) -> None:
        assert host.startswith("127."), "egress tests call loopback addresses only"
        self.requests: list[tuple[str, str]] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                listener.requests.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if redirect_to is not None:
                    self.send_response(302)
                    self.send_header("Location", redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if body_bytes:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(body_bytes))
                    self.end_headers()
                    block = b"a" * 65536
                    try:
                        for start in range(0, body_bytes, len(block)):
                            self.wfile.write(block[: body_bytes - start])
                    except OSError:
                        pass  # the client stopped reading: that is what a cap does
                    return
                payload = json.dumps({"hello": f"from {host}"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer  # noqa: N815  (http.server's naming)

            def log_message(self, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer((host, port), Handler)
        self.port = self._http.server_port
        self.url = f"http://{host}:{self.port}"

    def __enter__(self) -> Listener:
        threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
