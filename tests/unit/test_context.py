"""What an executor's `ctx` reads lazily: the instance's input and externalId, once, on first use."""

from __future__ import annotations

from typing import Any

from orchestrator.context import ExecutionContext


class _Runtime:
    def log(self, level: str, message: str, details: dict[str, Any] | None) -> None: ...

    def checkpoint(self, data: dict[str, Any]) -> None: ...

    def heartbeat(self) -> None: ...

    def should_stop(self) -> bool:
        return False


def test_the_instance_input_is_loaded_on_first_use_and_only_once():
    loads: list[int] = []

    def load() -> tuple[dict[str, Any], str | None]:
        loads.append(1)
        return {"name": "ada"}, "ext-1"

    ctx = ExecutionContext("i", "n", 1, None, None, _Runtime(), load_instance=load)
    assert loads == []  # an executor that never looks costs no read
    assert ctx.input == {"name": "ada"}
    assert ctx.external_id == "ext-1"
    assert ctx.input["name"] == "ada"
    assert loads == [1]


def test_a_given_input_is_used_as_it_is():
    ctx = ExecutionContext("i", "n", 1, {"a": 1}, None, _Runtime(), "ext")
    assert (ctx.input, ctx.external_id) == ({"a": 1}, "ext")
    assert ExecutionContext("i", "n", 1, None, None, _Runtime()).input == {}
