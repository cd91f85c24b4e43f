"""Which input paths a definition's templates need: exactly those whose absence would fail a render."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import required_inputs, templates
from orchestrator.definitions import parse_definition
from orchestrator.errors import TemplateError, ValidationError


def _definition(config: dict[str, Any], when: str | None = None) -> Any:
    node: dict[str, Any] = {"id": "n", "type": "task", "executor": "noop", "config": config}
    if when is not None:
        node["when"] = when
    up = {"id": "up", "type": "task", "executor": "noop"}
    node["dependsOn"] = ["up"]
    return parse_definition({"name": "w", "nodes": [up, node]}, check_executors=False)


def _missing(config: dict[str, Any], data: dict[str, Any], when: str | None = None) -> list[str]:
    return [p.field for p in required_inputs.missing(_definition(config, when), data)]


def _renders(config: dict[str, Any], data: dict[str, Any]) -> bool:
    try:
        scope = {"input": data, "nodes": {"up": {"output": {"x": 1}}}, "instance": {"id": "i"}}
        templates.render(config, scope)
    except TemplateError:
        return False
    return True


CASES = [
    ("${input.a}", {}, ["input.a"]),
    ("${input.a}", {"a": None}, []),  # present, null: renders null
    ("hello ${input.a.b}!", {"a": {}}, ["input.a.b"]),
    ("${input.a.b}", {"a": "text"}, ["input.a.b"]),  # a string has no keys
    ("${input.items.1}", {"items": [1]}, ["input.items.1"]),
    ("${input.items.0}", {"items": [1]}, []),
    ('${input.a || "x"}', {}, []),
    ("${input.a || input.b}", {}, ["input.b"]),  # the fallback is missing too
    ("${input.a || input.b}", {"a": 1}, []),  # the fallback is never read
    ("${input.a || input.b}", {"a": 0}, ["input.b"]),  # falsy: the fallback is read
    ("${input.a || nodes.up.output.x}", {}, []),  # a node path: not an input's business
    ("${nodes.up.output.x || input.b}", {}, []),  # the node output may be truthy
    ("${instance.id || input.b}", {}, []),
    ('${"" || input.b}', {}, ["input.b"]),
    ("${(input.a || input.b) || input.c}", {}, ["input.c"]),
    ("${!input.a}", {}, []),
    ("${input.a == 1}", {}, []),
    ("$${input.a}", {}, []),  # an escaped, literal `${`
]


@pytest.mark.parametrize(("text", "data", "expected"), CASES)
def test_a_path_is_needed_exactly_when_the_render_would_fail(text, data, expected):
    assert _missing({"v": text}, data) == expected
    assert _renders({"v": text}, data) == (expected == [])


def test_a_when_never_needs_a_path_and_a_when_false_for_the_input_spares_the_config():
    config = {"to": "${input.phone}"}
    assert _missing(config, {}, when="${input.notify}") == []
    assert _missing(config, {"notify": True}, when="${input.notify}") == ["input.phone"]
    # a condition on a node's output cannot be decided at create time: the config is checked
    assert _missing(config, {}, when="${nodes.up.output.ok}") == ["input.phone"]


def test_check_raises_a_validation_error_naming_the_path_and_the_node():
    with pytest.raises(ValidationError) as caught:
        required_inputs.check(_definition({"list": [{"deep": "${input.key}"}]}), {})
    (problem,) = caught.value.problems
    assert (problem.field, problem.code) == ("input.key", "REQUIRED_PARAMETER")
    assert "'n'" in problem.message and "config.list[0].deep" in problem.message
    assert "input.key" in caught.value.message
