"""What an executor sees of the world while it runs one attempt of one node."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class NodeRuntime(Protocol):
    """The side effects a context needs; the worker implements them against the store."""

    def log(self, level: str, message: str, details: dict[str, Any] | None) -> None: ...

    def checkpoint(self, data: dict[str, Any]) -> None: ...

    def heartbeat(self) -> None: ...

    def should_stop(self) -> bool: ...


class NodeLogger:
    """`ctx.log.info(...)`: lines go to the instance's execution log with node, executor and worker."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self._runtime = runtime

    def info(self, message: str, details: dict[str, Any] | None = None) -> None:
        self._runtime.log("info", message, details)

    def warning(self, message: str, details: dict[str, Any] | None = None) -> None:
        self._runtime.log("warning", message, details)

    def error(self, message: str, details: dict[str, Any] | None = None) -> None:
        self._runtime.log("error", message, details)

    def debug(self, message: str, details: dict[str, Any] | None = None) -> None:
        self._runtime.log("debug", message, details)


@dataclass
class ExecutionContext:
    """Passed to every executor call as `ctx`."""

    instance_id: str
    node_id: str
    attempt: int
    input: dict[str, Any]
    last_checkpoint: dict[str, Any] | None
    runtime: NodeRuntime
    external_id: str | None = None

    def __post_init__(self) -> None:
        self.log = NodeLogger(self.runtime)

    def checkpoint(self, data: dict[str, Any]) -> None:
        """Persist progress; a later attempt of this node receives it as `last_checkpoint`."""
        self.runtime.checkpoint(data)
        self.last_checkpoint = data

    def heartbeat(self) -> None:
        self.runtime.heartbeat()

    @property
    def should_stop(self) -> bool:
        """True once the instance is paused or cancelled, or the worker is shutting down."""
        return self.runtime.should_stop()
