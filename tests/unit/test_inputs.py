"""Instance input against a definition's `inputs`: defaults, required, types, constraints, every problem."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from examples import WORKFLOWS_DIR
from orchestrator.errors import Problem, ValidationError
from orchestrator.inputs import InputSpec, parse_input_specs, validate_input

SAMPLE_INPUTS = WORKFLOWS_DIR / "sample-inputs.json"


def specs(raw: dict[str, Any]) -> dict[str, InputSpec]:
    parsed, problems = parse_input_specs(raw)
    assert problems == []
    return parsed


def problems_of(spec_map: dict[str, InputSpec], data: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        validate_input(spec_map, data)
    assert info.value.message == "input is invalid"
    return [(p.field, p.code) for p in info.value.problems]


def test_the_spec_example_accepts_sample_input_and_keeps_extra_keys() -> None:
    spec_map = specs(
        {"email": {"type": "string", "required": True}, "department": {"type": "string", "required": True}}
    )
    data = json.loads(SAMPLE_INPUTS.read_text())["user-onboarding"]
    assert validate_input(spec_map, data) == data


def test_none_means_empty_and_defaults_apply() -> None:
    spec_map = specs(
        {"role": {"type": "string", "default": "employee"}, "tags": {"type": "array", "default": []}}
    )
    result = validate_input(spec_map, None)
    assert result == {"role": "employee", "tags": []}
    result["tags"].append("x")
    assert validate_input(spec_map, None)["tags"] == [], "a default must not be shared between instances"
    assert validate_input(spec_map, {"role": None}) == {"role": "employee", "tags": []}
    assert validate_input(spec_map, {"role": "admin"})["role"] == "admin"


def test_the_input_is_not_mutated() -> None:
    data = {"a": 1}
    validate_input(specs({"b": {"default": 2}}), data)
    assert data == {"a": 1}


def test_required_missing_or_null() -> None:
    spec_map = specs(
        {"email": {"type": "string", "required": True}, "n": {"type": "integer", "required": True}}
    )
    assert problems_of(spec_map, {"n": None}) == [
        ("input.email", "REQUIRED_PARAMETER"),
        ("input.n", "REQUIRED_PARAMETER"),
    ]


def test_required_with_default_is_satisfied_by_the_default() -> None:
    assert validate_input(specs({"x": {"type": "integer", "required": True, "default": 3}}), {}) == {"x": 3}


def test_optional_absent_is_left_absent() -> None:
    assert validate_input(specs({"x": {"type": "integer"}}), {}) == {}


def test_non_object_input_is_a_type_mismatch() -> None:
    for data in ([], "x", 3, True):
        assert problems_of({}, data) == [("input", "TYPE_MISMATCH")]


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("string", ["", "x"], [1, True, [], {}]),
        ("number", [0, 1.5, -3], [True, "1", [], {}]),
        ("integer", [0, -7, 10**20], [True, False, 3.0, 1.5, "3"]),
        ("boolean", [True, False], [0, 1, "true"]),
        ("object", [{}, {"a": 1}], [[], "x", 1]),
        ("array", [[], [1, "a"]], [{}, "x", (1,)]),
    ],
)
def test_types(kind: str, good: list[Any], bad: list[Any]) -> None:
    spec_map = specs({"v": {"type": kind}})
    for value in good:
        assert validate_input(spec_map, {"v": value}) == {"v": value}
    for value in bad:
        assert problems_of(spec_map, {"v": value}) == [("input.v", "TYPE_MISMATCH")], value


def test_type_mismatch_message_names_both_types() -> None:
    with pytest.raises(ValidationError) as info:
        validate_input(specs({"n": {"type": "integer"}}), {"n": True})
    expected = Problem("input.n", "must be of type integer, got boolean", "TYPE_MISMATCH")
    assert info.value.problems == [expected]


def test_enum_is_json_equality_so_true_is_not_1() -> None:
    spec_map = specs({"level": {"enum": [1, 2, "three"]}})
    assert validate_input(spec_map, {"level": 2}) == {"level": 2}
    assert validate_input(spec_map, {"level": "three"}) == {"level": "three"}
    assert problems_of(spec_map, {"level": True}) == [("input.level", "VALIDATION_ERROR")]
    assert problems_of(spec_map, {"level": 4}) == [("input.level", "VALIDATION_ERROR")]


def test_pattern_is_searched_like_json_schema() -> None:
    spec_map = specs(
        {
            "email": {"type": "string", "pattern": "@example\\.com"},
            "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
        }
    )
    assert validate_input(spec_map, {"email": "ann@example.com.au", "code": "ABC"})
    assert problems_of(spec_map, {"email": "ann@other.org", "code": "ABCD"}) == [
        ("input.email", "VALIDATION_ERROR"),
        ("input.code", "VALIDATION_ERROR"),
    ]


def test_numeric_bounds_and_aliases() -> None:
    spec_map = specs(
        {
            "a": {"type": "integer", "min": 1, "max": 10},
            "b": {"type": "number", "minimum": 0.5, "maximum": 1.5},
        }
    )
    assert validate_input(spec_map, {"a": 1, "b": 1.5}) == {"a": 1, "b": 1.5}
    assert problems_of(spec_map, {"a": 0, "b": 2}) == [
        ("input.a", "VALIDATION_ERROR"),
        ("input.b", "VALIDATION_ERROR"),
    ]
    assert problems_of(spec_map, {"a": 11, "b": 0.4}) == [
        ("input.a", "VALIDATION_ERROR"),
        ("input.b", "VALIDATION_ERROR"),
    ]


def test_lengths_apply_to_strings_and_arrays() -> None:
    spec_map = specs(
        {"s": {"type": "string", "minLength": 2, "maxLength": 3}, "l": {"type": "array", "minLength": 1}}
    )
    assert validate_input(spec_map, {"s": "ab", "l": [1]})
    assert problems_of(spec_map, {"s": "a", "l": []}) == [
        ("input.s", "VALIDATION_ERROR"),
        ("input.l", "VALIDATION_ERROR"),
    ]
    assert problems_of(spec_map, {"s": "abcd"}) == [("input.s", "VALIDATION_ERROR")]


def test_a_value_can_break_several_constraints_and_all_are_listed() -> None:
    spec_map = specs({"s": {"type": "string", "pattern": "^x", "maxLength": 2, "enum": ["xy"]}})
    assert problems_of(spec_map, {"s": "abc"}) == [("input.s", "VALIDATION_ERROR")] * 3


def test_every_problem_is_reported_at_once() -> None:
    spec_map = specs(
        {
            "email": {"type": "string", "required": True},
            "age": {"type": "integer", "min": 0},
            "ok": {"type": "boolean"},
            "size": {"enum": ["s", "m"]},
        }
    )
    assert problems_of(spec_map, {"age": -1, "ok": "yes", "size": "xl"}) == [
        ("input.email", "REQUIRED_PARAMETER"),
        ("input.age", "VALIDATION_ERROR"),
        ("input.ok", "TYPE_MISMATCH"),
        ("input.size", "VALIDATION_ERROR"),
    ]


def test_untyped_input_accepts_anything() -> None:
    spec_map = specs({"any": {"description": "anything"}})
    for value in (1, "x", [1], {"a": 1}, False):
        assert validate_input(spec_map, {"any": value}) == {"any": value}


# --- the schema itself ---------------------------------------------------------------------------


def schema_problems(raw: Any) -> list[tuple[str, str]]:
    _, problems = parse_input_specs(raw)
    return [(p.field, p.code) for p in problems]


def test_spec_fields_are_parsed() -> None:
    spec = specs(
        {
            "e": {
                "type": "string",
                "required": True,
                "default": "a@b",
                "enum": ["a@b"],
                "pattern": "@",
                "minLength": 1,
                "maxLength": 9,
                "description": "mail",
            }
        }
    )["e"]
    assert spec == InputSpec("e", "string", True, "a@b", ("a@b",), "@", None, None, 1, 9, "mail")


def test_bad_schema_is_reported_per_field() -> None:
    assert schema_problems(
        {
            "a": {"type": "str"},
            "b": {"type": "string", "pattern": "("},
            "c": {"required": "yes"},
            "d": {"enum": []},
            "e": {"min": "1"},
            "f": {"minLength": -1},
            "g": {"min": 5, "max": 1},
            "h": {"min": 1, "minimum": 2},
            "i": "string",
            "j": {"description": 5},
        }
    ) == [
        ("inputs.a.type", "VALIDATION_ERROR"),
        ("inputs.b.pattern", "VALIDATION_ERROR"),
        ("inputs.c.required", "TYPE_MISMATCH"),
        ("inputs.d.enum", "TYPE_MISMATCH"),
        ("inputs.e.min", "TYPE_MISMATCH"),
        ("inputs.f.minLength", "TYPE_MISMATCH"),
        ("inputs.g.max", "VALIDATION_ERROR"),
        ("inputs.h.minimum", "VALIDATION_ERROR"),
        ("inputs.i", "TYPE_MISMATCH"),
        ("inputs.j.description", "TYPE_MISMATCH"),
    ]


def test_inputs_must_be_an_object() -> None:
    assert schema_problems(["email"]) == [("inputs", "TYPE_MISMATCH")]
    assert parse_input_specs(None) == ({}, [])


def test_a_default_its_own_spec_rejects_is_a_schema_problem() -> None:
    assert schema_problems({"n": {"type": "integer", "default": "3"}}) == [
        ("inputs.n.default", "TYPE_MISMATCH")
    ]
    assert schema_problems({"n": {"type": "integer", "max": 2, "default": 3}}) == [
        ("inputs.n.default", "VALIDATION_ERROR")
    ]


def test_unknown_spec_keys_are_ignored() -> None:
    assert schema_problems({"n": {"type": "integer", "format": "int32", "x-ui": {}}}) == []


# --- patterns are matched by RE2, in linear time ---------------------------------------------------

EVIL = "^(a+)+$"  # nested quantifiers: Python's backtracking `re` takes 2^n steps on a near miss
NEAR_MISS = "a" * 28 + "!"  # about 20 s in `re.search`, with the GIL held all along


def test_a_catastrophic_pattern_is_refused_in_bounded_time() -> None:
    spec_map = specs({"s": {"type": "string", "pattern": EVIL}})
    started = time.monotonic()
    assert problems_of(spec_map, {"s": NEAR_MISS}) == [("input.s", "VALIDATION_ERROR")]
    # generous: RE2 takes microseconds here, the backtracking engine 20 s
    assert time.monotonic() - started < 5
    started = time.monotonic()
    assert problems_of(spec_map, {"s": "a" * 500_000 + "!"}) == [("input.s", "VALIDATION_ERROR")]
    assert validate_input(spec_map, {"s": "a" * 500_000}) == {"s": "a" * 500_000}
    assert time.monotonic() - started < 5  # linear in the value: milliseconds for half a MiB


def test_a_default_is_checked_against_a_catastrophic_pattern_in_bounded_time() -> None:
    started = time.monotonic()
    assert schema_problems({"s": {"type": "string", "pattern": EVIL, "default": NEAR_MISS}}) == [
        ("inputs.s.default", "VALIDATION_ERROR")
    ]
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "pattern",
    [r"^(a)\1$", r"^(?P<x>a)(?P=x)$", r"^(?=.*\d).+$", r"^(?!admin).*$", r"(?<=@)example", r"(?<!x)y"],
)
def test_backreferences_and_lookaround_are_refused_when_the_definition_is_posted(pattern: str) -> None:
    _, found = parse_input_specs({"code": {"type": "string", "pattern": pattern}})
    assert [(p.field, p.code) for p in found] == [("inputs.code.pattern", "VALIDATION_ERROR")]
    assert "RE2" in found[0].message and "lookaround" in found[0].message


def test_a_pattern_over_the_length_limit_is_refused() -> None:
    assert schema_problems({"s": {"pattern": "a" * 1001}}) == [("inputs.s.pattern", "VALIDATION_ERROR")]
    assert schema_problems({"s": {"pattern": "a" * 1000}}) == []


def test_patterns_match_characters_not_bytes() -> None:
    spec_map = specs({"word": {"pattern": r"^\p{L}{2,3}$"}, "three": {"pattern": "^.{3}$"}})
    assert validate_input(spec_map, {"word": "жé", "three": "héé"})
    assert problems_of(spec_map, {"word": "ж1", "three": "hé"}) == [
        ("input.word", "VALIDATION_ERROR"),
        ("input.three", "VALIDATION_ERROR"),
    ]


def test_an_unpaired_surrogate_is_a_problem_not_a_crash() -> None:
    assert schema_problems({"s": {"pattern": "\ud800"}}) == [("inputs.s.pattern", "VALIDATION_ERROR")]
    spec_map = specs({"s": {"type": "string", "pattern": "^a"}})
    assert validate_input(spec_map, {"s": "a\ud800"}) == {"s": "a\ud800"}
    assert problems_of(spec_map, {"s": "\ud800a"}) == [("input.s", "VALIDATION_ERROR")]


def test_a_stored_pattern_re2_refuses_still_loads_and_refuses_only_the_values_it_must_check() -> None:
    # A definition posted before patterns had to suit RE2 must stay readable after an upgrade.
    raw = {"code": {"type": "string", "pattern": "^(?!admin)", "default": "guest"}}
    assert schema_problems(raw) == [("inputs.code.pattern", "VALIDATION_ERROR")]
    spec_map, found = parse_input_specs(raw, stored=True)
    assert found == []
    assert validate_input(spec_map, {}) == {"code": "guest"}  # the default was checked when posted
    with pytest.raises(ValidationError) as info:
        validate_input(spec_map, {"code": "root"})
    [problem] = info.value.problems
    assert (problem.field, problem.code) == ("input.code", "VALIDATION_ERROR")
    assert "cannot be checked" in problem.message
