"""Where the example executors keep their data (SQLite files under one directory), and what they take
from the process they run in (`environment`).

Executors run in Celery worker processes, several at a time, so every call opens its own connection
(never shared across processes), the files use WAL so readers do not block the writer, and writers
wait on a lock (busy timeout) instead of failing at once.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from orchestrator.errors import Fatal, Retryable

DATA_DIR_ENV = "ORCH_EXAMPLES_DATA_DIR"
BUSY_TIMEOUT_S = 30.0

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class Environment:
    """What the example executors take from their process: their settings (`variables`, the process
    environment unless given) and the way they wait (`sleep`).

    They reach both through the one instance below, so a caller (a test) gives them settings and a
    clock of its own by setting its attributes, never by changing `os.environ` or `time.sleep`,
    which every other thread of the process would see too.
    """

    def __init__(
        self, variables: Mapping[str, str] | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.variables: Mapping[str, str] = os.environ if variables is None else variables
        self.sleep = sleep


environment = Environment()


def data_dir() -> Path:
    """`$ORCH_EXAMPLES_DATA_DIR`, else `./var/examples`; read per call so a changed env takes effect."""
    raw = environment.variables.get(DATA_DIR_ENV, "").strip()
    path = Path(raw) if raw else Path.cwd() / "var" / "examples"
    path.mkdir(parents=True, exist_ok=True)
    return path


def safe_name(value: object, field: str) -> str:
    """A system name from the input made safe as a file name (no separators, no `..`)."""
    if not isinstance(value, str) or not value.strip():
        raise Fatal(f"{field} must be a non-empty string", field=field)
    return _UNSAFE.sub("_", value.strip())[:64]


def env_number(name: str, default: float, *, minimum: float = 0) -> float:
    """A numeric env setting; a malformed one fails the node rather than being silently ignored."""
    raw = environment.variables.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise Fatal(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise Fatal(f"{name}={raw!r} must be at least {minimum}")
    return value


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A fresh connection in autocommit mode; writes go through `transaction()`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        yield conn
    except sqlite3.OperationalError as exc:
        # Lock contention that outlasted the busy timeout is passing; another attempt may succeed.
        if "locked" in str(exc) or "busy" in str(exc):
            raise Retryable(f"{path.name}: {exc}") from exc
        raise
    finally:
        conn.close()


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE takes the write lock up front, so a read-then-write never deadlocks midway."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
