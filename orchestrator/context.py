"""What an executor sees of the world while it runs one attempt of one node."""

from __future__ import annotations

from collections.abc import Callable
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


class ExecutionContext:
    """Passed to every executor call as `ctx`.

    The instance's `input` and `external_id` are given, or read on first use through `load_instance`
    (most nodes never look at them, and the node path does not read them for those).
    """

    def __init__(
        self,
        instance_id: str,
        node_id: str,
        attempt: int,
        input: dict[str, Any] | None,
        last_checkpoint: dict[str, Any] | None,
        runtime: NodeRuntime,
        external_id: str | None = None,
        *,
        load_instance: Callable[[], tuple[dict[str, Any], str | None]] | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.node_id = node_id
        self.attempt = attempt
        self.last_checkpoint = last_checkpoint
        self.runtime = runtime
        self.log = NodeLogger(runtime)
        self._instance = (input or {}, external_id) if load_instance is None else None
        self._load_instance = load_instance

    def _instance_data(self) -> tuple[dict[str, Any], str | None]:
        if self._instance is None:
            assert self._load_instance is not None
            self._instance = self._load_instance()
        return self._instance

    @property
    def input(self) -> dict[str, Any]:
        """The instance's input."""
        return self._instance_data()[0]

    @property
    def external_id(self) -> str | None:
        return self._instance_data()[1]

    def checkpoint(self, data: dict[str, Any]) -> None:
        """Persist progress; a later attempt of this node receives it as `last_checkpoint`."""
        self.runtime.checkpoint(data)
        self.last_checkpoint = data

    def heartbeat(self) -> None:
        self.runtime.heartbeat()

    @property
    def should_stop(self) -> bool:
        """True once the instance is paused or cancelled, or the worker is shutting down (seen at the
        node's next heartbeat). The executor may finish, or checkpoint and raise `StopRequested`:
        the node is then handed back, not failed, and its next attempt starts from the checkpoint."""
        return self.runtime.should_stop()
