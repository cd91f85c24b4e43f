"""The built-in executors honour a stop request: `sleep` checkpoints how long it slept and stops, and
a later attempt sleeps only what is left; `http` sends no request once asked to stop."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import StopRequested, builtin_executors
from orchestrator.context import ExecutionContext


class _Runtime:
    """Records what the executor does; `should_stop` turns true after `stop_after` checkpoints."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after = stop_after
        self.checkpoints: list[dict[str, Any]] = []
        self.lines: list[tuple[str, str, dict[str, Any] | None]] = []

    def log(self, level: str, message: str, details: dict[str, Any] | None) -> None:
        self.lines.append((level, message, details))

    def checkpoint(self, data: dict[str, Any]) -> None:
        self.checkpoints.append(data)

    def heartbeat(self) -> None: ...

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.checkpoints) >= self.stop_after


def _ctx(runtime: _Runtime, checkpoint: dict[str, Any] | None = None) -> ExecutionContext:
    return ExecutionContext("i", "n", 1, {}, checkpoint, runtime)


def test_sleep_checkpoints_how_long_it_slept_and_stops_when_asked():
    runtime = _Runtime(stop_after=1)  # asked to stop once its first progress checkpoint is written
    with pytest.raises(StopRequested, match="stopped after"):
        builtin_executors.sleep(_ctx(runtime), {"seconds": 600, "checkpointEvery": 0.05})
    first, stopped = (c["slept"] for c in runtime.checkpoints)
    assert 0 < first <= stopped < 600  # its last checkpoint is where it stood when it stopped


def test_sleep_resumes_from_its_checkpoint_and_sleeps_only_what_is_left():
    runtime = _Runtime()
    output = builtin_executors.sleep(
        _ctx(runtime, {"slept": 0.25}), {"seconds": 0.3, "checkpointEvery": 0.01}
    )
    assert output == {"slept": 0.3}
    assert runtime.lines == [("info", "resuming at 0.25s of 0.3s", {"resumedFrom": 0.25})]
    assert all(c["slept"] >= 0.25 for c in runtime.checkpoints), runtime.checkpoints


def test_sleep_asked_to_stop_before_it_slept_keeps_what_an_earlier_attempt_slept():
    runtime = _Runtime(stop_after=0)
    with pytest.raises(StopRequested):
        builtin_executors.sleep(_ctx(runtime, {"slept": 2.0}), {"seconds": 5})
    assert runtime.checkpoints == [{"slept": 2.0}]


def test_http_sends_nothing_once_asked_to_stop():
    # loopback is denied by default: had it tried to send, the egress policy would fail it (Fatal)
    with pytest.raises(StopRequested, match="not sent"):
        builtin_executors.http(_ctx(_Runtime(stop_after=0)), {"url": "http://127.0.0.1:9/x"})
