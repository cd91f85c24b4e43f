"""Definitions of map, wait and sleep nodes: their fields parsed, and every bad one named."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.definitions import MAX_MAP_ITEMS, item_id, item_of, parse_definition, parse_instant
from orchestrator.errors import ValidationError
from tests.unit.test_definitions import EXEC, fields, node, workflow


def mapped(**extra: Any) -> dict[str, Any]:
    body = {
        "id": "each",
        "type": "map",
        "dependsOn": ["list"],
        "over": "${nodes.list.output.items}",
        "node": {"executor": EXEC, "config": {"value": "${item}", "at": "${index}"}, "retries": 2},
    }
    body.update(extra)
    return body


def test_a_map_node_parses_with_its_item_body() -> None:
    definition = parse_definition(workflow(node("list"), mapped(maxConcurrency=5, onItemFailure="continue")))
    spec = definition.node("each")
    assert (spec.type, spec.over, spec.max_concurrency, spec.on_item_failure) == (
        "map",
        "${nodes.list.output.items}",
        5,
        "continue",
    )
    assert spec.item is not None and (spec.item.type, spec.item.executor, spec.item.retries) == (
        "task",
        EXEC,
        2,
    )
    assert spec.node_refs == {"list"}
    # an item's node id names its map and index; its spec is the map's body under that id
    assert item_id("each", 7) == "each[7]" and item_of("each[7]") == ("each", 7) and item_of("each") is None
    item = definition.node("each[7]")
    assert (item.id, item.executor, item.config) == ("each[7]", EXEC, {"value": "${item}", "at": "${index}"})
    with pytest.raises(KeyError):
        definition.node("list[0]")  # not a map


def test_map_defaults() -> None:
    spec = parse_definition(workflow(node("list"), mapped())).node("each")
    assert (spec.max_concurrency, spec.on_item_failure) == (None, "fail")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"over": None}, ("nodes[1].over", "REQUIRED_FIELD")),
        ({"over": ["a"]}, ("nodes[1].over", "TYPE_MISMATCH")),
        ({"over": "a list"}, ("nodes[1].over", "VALIDATION_ERROR")),
        ({"over": "items: ${nodes.list.output.items}"}, ("nodes[1].over", "VALIDATION_ERROR")),
        ({"over": "${nodes.list.output"}, ("nodes[1].over", "TEMPLATE_ERROR")),
        ({"node": None}, ("nodes[1].node", "REQUIRED_FIELD")),
        ({"node": "noop"}, ("nodes[1].node", "TYPE_MISMATCH")),
        ({"node": {"type": "wait", "signal": "s"}}, ("nodes[1].node.type", "VALIDATION_ERROR")),
        (
            {"node": {"executor": EXEC, "dependsOn": ["list"]}},
            ("nodes[1].node.dependsOn", "VALIDATION_ERROR"),
        ),
        ({"node": {"type": "task"}}, ("nodes[1].node.executor", "REQUIRED_FIELD")),
        ({"maxConcurrency": 0}, ("nodes[1].maxConcurrency", "VALIDATION_ERROR")),
        ({"maxConcurrency": MAX_MAP_ITEMS + 1}, ("nodes[1].maxConcurrency", "VALIDATION_ERROR")),
        ({"onItemFailure": "ignore"}, ("nodes[1].onItemFailure", "VALIDATION_ERROR")),
    ],
)
def test_bad_maps_name_the_field(change: dict[str, Any], expected: tuple[str, str]) -> None:
    body = mapped()
    for key, value in change.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    assert expected in fields(workflow(node("list"), body))


def test_item_and_index_exist_only_in_a_maps_body() -> None:
    assert ("nodes[0].config.x", "TEMPLATE_ERROR") in fields(workflow(node("a", config={"x": "${item.id}"})))
    assert ("nodes[0].when", "TEMPLATE_ERROR") in fields(workflow(node("a", when="${index}")))
    assert ("nodes[1].over", "TEMPLATE_ERROR") in fields(workflow(node("list"), mapped(over="${item}")))
    assert ("nodes[0].config.x", "TEMPLATE_ERROR") in fields(workflow(node("a", config={"x": "${index.n}"})))


def test_a_map_body_reads_only_upstream_nodes() -> None:
    body = mapped(node={"executor": EXEC, "config": {"x": "${nodes.later.output}"}})
    found = fields(workflow(node("list"), body, node("later", "each")))
    assert ("nodes[1].node.config.x", "TEMPLATE_ERROR") in found


def test_a_map_id_leaves_room_for_the_index() -> None:
    assert ("nodes[1].id", "VALIDATION_ERROR") in fields(workflow(node("list"), mapped(id="m" * 121)))
    parse_definition(workflow(node("list"), mapped(id="m" * 120)))


def test_a_wait_node_parses() -> None:
    body = {
        "id": "approve",
        "type": "wait",
        "signal": "approval",
        "timeout": 5000,
        "onTimeout": {"output": {}},
    }
    spec = parse_definition(workflow(body)).node("approve")
    assert (spec.type, spec.signal, spec.timeout_ms, spec.on_timeout) == (
        "wait",
        "approval",
        5000,
        {"output": {}},
    )
    assert parse_definition(workflow({**body, "onTimeout": None})).node("approve").on_timeout is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, ("nodes[0].signal", "REQUIRED_FIELD")),
        ({"signal": 3}, ("nodes[0].signal", "TYPE_MISMATCH")),
        ({"signal": "has space"}, ("nodes[0].signal", "VALIDATION_ERROR")),
        ({"signal": "s", "onTimeout": {"result": 1}}, ("nodes[0].onTimeout", "TYPE_MISMATCH")),
        ({"signal": "s", "timeout": 0}, ("nodes[0].timeout", "VALIDATION_ERROR")),
    ],
)
def test_bad_waits_name_the_field(body: dict[str, Any], expected: tuple[str, str]) -> None:
    assert expected in fields(workflow({"id": "w", "type": "wait", **body}))


def test_one_signal_completes_one_wait_node() -> None:
    first, second = ({"id": i, "type": "wait", "signal": "go"} for i in ("a", "b"))
    assert ("nodes[1].signal", "VALIDATION_ERROR") in fields(workflow(first, second))


def test_a_sleep_node_parses_with_a_duration_or_an_instant() -> None:
    spec = parse_definition(workflow({"id": "s", "type": "sleep", "duration": 60000})).node("s")
    assert (spec.type, spec.duration_ms, spec.until) == ("sleep", 60000, None)
    until = "2026-12-24T09:00:00+01:00"
    assert parse_definition(workflow({"id": "s", "type": "sleep", "until": until})).node("s").until == until
    templated = parse_definition(workflow({"id": "s", "type": "sleep", "until": "${input.sendAt}"})).node("s")
    assert templated.reads_instance


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, ("nodes[0].duration", "REQUIRED_FIELD")),
        ({"duration": 5, "until": "2026-12-24T09:00:00Z"}, ("nodes[0].until", "VALIDATION_ERROR")),
        ({"duration": -1}, ("nodes[0].duration", "VALIDATION_ERROR")),
        ({"until": "tomorrow"}, ("nodes[0].until", "VALIDATION_ERROR")),
        ({"until": 1733130000}, ("nodes[0].until", "TYPE_MISMATCH")),
        ({"until": "${input.when"}, ("nodes[0].until", "TEMPLATE_ERROR")),
        # valid ISO 8601 whose offset moves it out of the calendar
        ({"until": "0001-01-01T00:00:00+01:00"}, ("nodes[0].until", "VALIDATION_ERROR")),
        ({"until": "9999-12-31T23:59:59-01:00"}, ("nodes[0].until", "VALIDATION_ERROR")),
    ],
)
def test_bad_sleeps_name_the_field(body: dict[str, Any], expected: tuple[str, str]) -> None:
    assert expected in fields(workflow({"id": "s", "type": "sleep", **body}))


def test_instants_are_naive_utc() -> None:
    assert str(parse_instant("2026-12-24T09:00:00+01:00")) == "2026-12-24 08:00:00"
    assert str(parse_instant("2026-12-24T09:00:00Z")) == "2026-12-24 09:00:00"
    assert str(parse_instant("2026-12-24T09:00:00")) == "2026-12-24 09:00:00"
    assert parse_instant("soon") is None and parse_instant(5) is None and parse_instant("9" * 100) is None


def test_a_problem_report_lists_every_bad_node_type_at_once() -> None:
    with pytest.raises(ValidationError) as raised:
        parse_definition(
            workflow({"id": "w", "type": "wait"}, {"id": "s", "type": "sleep"}, {"id": "m", "type": "map"})
        )
    located = {p.field for p in raised.value.problems}
    assert {"nodes[0].signal", "nodes[1].duration", "nodes[2].over", "nodes[2].node"} <= located
