"""A real `orchestrator api` (gunicorn) process for tests, and raw sockets to load it with."""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from tests.support.fixtures import MYSQL_URL, REDIS_URL
from tests.support.services import Process, free_port, process_env, wait_for


class ServedApi:
    """`python -m orchestrator_cli api ...` on a free loopback port, with the test MySQL and Redis."""

    def __init__(self, log_dir: Path, *args: str, port: int | None = None, **env: str) -> None:
        self.port = port or free_port()  # a given port: a restart on the same address
        self.url = f"http://127.0.0.1:{self.port}"
        settings = {
            "ORCH_DATABASE_URL": MYSQL_URL,
            "ORCH_BROKER_URL": REDIS_URL,
            "ORCH_EXECUTOR_MODULES": "tests.support.executors",
            **env,
        }
        # without --host in `args`: the default, 127.0.0.1
        argv = [sys.executable, "-m", "orchestrator_cli", "api", "--port", str(self.port), *args]
        self.process = Process("api", argv, process_env(**settings), log_dir / f"api-{self.port}.log")

    def start(self, timeout: float = 60) -> ServedApi:
        self.process.start()

        def healthy() -> bool:
            assert self.process.alive(), self.process.log_text()[-3000:]
            try:
                return requests.get(self.url + "/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(healthy, timeout, "gunicorn to serve /health", interval=0.1)
        return self

    def stop(self) -> None:
        """SIGKILL the server's process group: no test looks at its graceful stop, which waits for the
        open event streams (up to their 5 s keepalive)."""
        self.process.kill()

    def log(self) -> str:
        return self.process.log_text()


def raise_open_files_limit(needed: int) -> None:
    """Let this process hold `needed` sockets: raise the soft limit, within the hard one, if it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        assert target >= needed, f"the open-files hard limit ({hard}) is below the {needed} this test needs"
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The status, headers (lower-cased names) and the body bytes already read of one HTTP response."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"the server closed the connection after {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def open_stream(
    port: int, path: str, token: str, timeout: float = 30
) -> tuple[socket.socket, int, dict[str, str], bytes]:
    """A GET of `path` on a raw socket, left open after its response head has arrived."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    )
    sock.sendall(request.encode())
    status, headers, rest = read_head(sock)
    return sock, status, headers, rest


def error_body(headers: dict[str, str], rest: bytes, sock: socket.socket) -> dict[str, Any]:
    """The JSON body of a (non-streamed) error response whose head `read_head` returned."""
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(4096)
        assert chunk
        rest += chunk
    return json.loads(rest[:length])  # type: ignore[no-any-return]


@contextlib.contextmanager
def sockets() -> Iterator[list[socket.socket]]:
    """A list of sockets that are all closed when the block ends, however it ends."""
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            with contextlib.suppress(OSError):
                sock.close()
