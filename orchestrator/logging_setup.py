"""Structured logs: with `ORCH_LOG_FORMAT=json` every process writes one JSON object per line.

Each line carries the instance and node it is about where that is known: from a record's `extra`
(`instance_id`, `node_id`, `attempt`, `worker_id`) or from the log context that `bind` sets for the
duration of a task (the worker binds it around every Celery task, see `workers/observe.py`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

JSON = "json"
# record attribute -> JSON field, for the ids a line may be about
_ID_FIELDS = {
    "instance_id": "instanceId",
    "node_id": "nodeId",
    "attempt": "attempt",
    "worker_id": "workerId",
    "task_id": "taskId",
    "task_name": "task",
}
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("orchestrator_log_context")


def bind(**ids: Any) -> contextvars.Token[dict[str, Any]]:
    """Attach ids (keys of `_ID_FIELDS`) to every line logged from this context until `unbind`."""
    return _context.set({k: v for k, v in ids.items() if v is not None})


def unbind(token: contextvars.Token[dict[str, Any]] | None = None) -> None:
    if token is not None:
        _context.reset(token)
    else:
        _context.set({})


@contextmanager
def bound(**ids: Any) -> Iterator[None]:
    token = bind(**ids)
    try:
        yield
    finally:
        unbind(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, process, the ids, and any error."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.processName if record.processName != "MainProcess" else record.process,
        }
        ids = {**_context.get({}), **{k: getattr(record, k) for k in _ID_FIELDS if hasattr(record, k)}}
        for attr, name in _ID_FIELDS.items():
            if ids.get(attr) is not None:
                entry[name] = ids[attr]
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["error"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def use_json(handlers: Iterable[logging.Handler]) -> None:
    for handler in handlers:
        handler.setFormatter(JsonFormatter())


def configure(log_format: str, loggers: Iterable[str] = (), level: int = logging.INFO) -> bool:
    """Apply `log_format` to this process: for `json`, the root logger (given a stderr handler if it
    has none) and the named loggers' own handlers format as JSON. Any other format leaves logging as
    it is. Returns whether JSON is in force."""
    if log_format.lower() != JSON:
        return False
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
        if root.level > level or root.level == logging.NOTSET:
            root.setLevel(level)
    use_json(root.handlers)
    for name in loggers:
        use_json(logging.getLogger(name).handlers)
    return True
