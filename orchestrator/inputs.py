"""A workflow's `inputs` schema: parsing it from a definition, and checking an instance's input against it.

The schema is a small, JSON-Schema-like subset per input: `type`, `required`, `default`, `enum`,
`pattern`, `min`/`minimum`, `max`/`maximum`, `minLength`, `maxLength`, `description`. As in JSON
Schema, each keyword constrains only the values it applies to (`pattern` strings, `minimum` numbers,
`minLength` strings and arrays), and `pattern` is searched, not anchored: write `^...$` to match all.

Patterns come from whoever posts a definition and are matched against whatever a client sends, so they
are matched by RE2 (`google-re2`), in time linear in the value, and never by Python's backtracking
`re`, where `^(a+)+$` against 28 `a`s and a `!` takes 20 s holding the GIL. RE2 has no backreferences
or lookaround: a pattern it refuses is a problem of the definition, reported when it is posted.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import re2

from orchestrator.errors import Problem, ValidationError

INPUT_TYPES = ("string", "number", "integer", "boolean", "object", "array")

_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}

# A pattern is a short constraint, not a program: 1,000 characters hold any real one (RFC 5322's
# address pattern is about 400) and keep compiling it cheap.
MAX_PATTERN_LENGTH = 1000
# RE2's memory budget per pattern, for its compiled program and its DFA cache: 2 MiB admits
# `^\p{L}{1,100}$` (a program of 120,000 instructions) and refuses larger programs as "pattern too
# large". That bounds the work per character matched (a pattern built to defeat RE2's DFA takes about
# 3 s for a 1 MiB value, with the GIL released) and what the library's cache of the last 128 compiled
# patterns can hold.
_PATTERN_MEMORY = 2 << 20


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = _PATTERN_MEMORY
    options.never_capture = True  # only "does it match?" is asked: no group positions to compute
    options.log_errors = False  # a refused pattern is the poster's problem, reported to them, not logged
    return options


_OPTIONS = _options()


@dataclass(frozen=True)
class InputSpec:
    """One declared input. `type` None accepts any JSON value; `default` None means there is no default."""

    name: str
    type: str | None = None
    required: bool = False
    default: Any = None
    enum: tuple[Any, ...] | None = None
    pattern: str | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    min_length: int | None = None
    max_length: int | None = None
    description: str | None = None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_input_specs(
    raw: Any, where: str = "inputs", *, stored: bool = False
) -> tuple[dict[str, InputSpec], list[Problem]]:
    """The specs declared by a definition's `inputs` object, and every problem found in it (never raises).

    `raw` None means no inputs. Unknown keys in a spec are ignored, as definitions keep unknown keys.
    `stored=True` reads specs that were valid when posted: a pattern is not compiled again and a default
    not checked again, so a definition stored before patterns had to suit RE2 still loads (an input
    checked against such a pattern is then refused with a clear problem).
    """
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, [Problem(where, "must be an object of input name to spec", "TYPE_MISMATCH")]
    specs: dict[str, InputSpec] = {}
    problems: list[Problem] = []
    for name, body in raw.items():
        field = f"{where}.{name}"
        if not name:
            problems.append(Problem(where, "input names must not be empty"))
        elif not isinstance(body, dict):
            problems.append(Problem(field, 'must be an object such as {"type": "string"}', "TYPE_MISMATCH"))
        else:
            spec, found = _parse_spec(name, body, field, stored)
            problems.extend(found)
            specs[name] = spec
    return specs, problems


def _parse_spec(name: str, body: dict[str, Any], field: str, stored: bool) -> tuple[InputSpec, list[Problem]]:
    problems: list[Problem] = []

    def bad(key: str, message: str, code: str = "VALIDATION_ERROR") -> None:
        problems.append(Problem(f"{field}.{key}", message, code))

    kind = body.get("type")
    if kind is not None and kind not in INPUT_TYPES:
        bad("type", f"unknown type {kind!r}; use one of {', '.join(INPUT_TYPES)}")
        kind = None
    if not isinstance(body.get("required", False), bool):
        bad("required", "must be true or false", "TYPE_MISMATCH")
    enum = body.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum):
        bad("enum", "must be a non-empty array", "TYPE_MISMATCH")
        enum = None
    pattern = body.get("pattern")
    if pattern is not None and not (stored and isinstance(pattern, str)):
        pattern = _checked_pattern(pattern, bad)
    minimum = _bound(body, ("min", "minimum"), _is_number, "a number", bad)
    maximum = _bound(body, ("max", "maximum"), _is_number, "a number", bad)
    min_length = _bound(body, ("minLength",), _is_count, "a non-negative integer", bad)
    max_length = _bound(body, ("maxLength",), _is_count, "a non-negative integer", bad)
    if minimum is not None and maximum is not None and minimum > maximum:
        bad("max", f"maximum {maximum} is below minimum {minimum}")
    if min_length is not None and max_length is not None and min_length > max_length:
        bad("maxLength", f"maxLength {max_length} is below minLength {min_length}")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        bad("description", "must be a string", "TYPE_MISMATCH")
        description = None
    spec = InputSpec(
        name,
        kind,
        body.get("required") is True,
        body.get("default"),
        tuple(enum) if enum is not None else None,
        pattern,
        minimum,
        maximum,
        min_length,
        max_length,
        description,
    )
    if spec.default is not None and not problems and not stored:
        # A default that its own spec rejects would fail every instance that relies on it. Checked here,
        # once, and not again for each instance that takes it (a batch would repeat the work per item).
        problems.extend(
            Problem(f"{field}.default", p.message, p.code)
            for p in _check_value(spec, spec.default, f"{field}.default")
        )
    return spec, problems


def _checked_pattern(pattern: Any, bad: Any) -> str | None:
    if not isinstance(pattern, str):
        bad("pattern", "must be a string", "TYPE_MISMATCH")
        return None
    if len(pattern) > MAX_PATTERN_LENGTH:
        bad("pattern", f"must be at most {MAX_PATTERN_LENGTH} characters long")
        return None
    refused = _refusal(pattern)
    if refused is not None:
        bad(
            "pattern",
            f"is not a pattern RE2 can compile ({refused}); patterns are matched in linear time,"
            " so backreferences and lookaround are not supported",
        )
        return None
    return pattern


def _compiled(pattern: str) -> Any:
    """`pattern` compiled by RE2 (compilations are cached by the library); raises re2.error or
    UnicodeEncodeError (an unpaired surrogate) when it cannot be."""
    return re2.compile(pattern.encode("utf-8"), _OPTIONS)


def _refusal(pattern: str) -> str | None:
    """Why RE2 cannot match `pattern`, or None when it can."""
    try:
        _compiled(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else ""
        return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    except UnicodeEncodeError:
        return "an unpaired surrogate"
    return None


def _searches(pattern: str, value: str) -> bool | None:
    """Whether `pattern` is found in `value`, in time linear in `value`; None if RE2 refuses `pattern`
    (only possible for a definition stored before patterns were checked with RE2)."""
    try:
        compiled = _compiled(pattern)
    except (re2.error, UnicodeEncodeError):
        return None
    # `surrogatepass`: an unpaired surrogate (no body the API accepts holds one) is matched as the bytes
    # it encodes to rather than raising
    return compiled.search(value.encode("utf-8", "surrogatepass")) is not None


def _bound(body: dict[str, Any], keys: tuple[str, ...], ok: Any, what: str, bad: Any) -> Any:
    """The value of whichever alias of a bound is given; a problem if aliases disagree or it is not `what`."""
    given = [(key, body[key]) for key in keys if body.get(key) is not None]
    if len({repr(value) for _, value in given}) > 1:
        bad(given[1][0], f"conflicts with {given[0][0]}; give only one of {' or '.join(keys)}")
        return None
    if not given:
        return None
    key, value = given[0]
    if not ok(value):
        bad(key, f"must be {what}", "TYPE_MISMATCH")
        return None
    return value


def validate_input(specs: dict[str, InputSpec], data: Any) -> dict[str, Any]:
    """`data` with defaults applied for absent (or null) inputs; keys not in `specs` are kept as given.

    Raises ValidationError("input is invalid") listing every problem, fields `input.<name>`, codes
    REQUIRED_PARAMETER (absent or null, no default), TYPE_MISMATCH (booleans are neither numbers nor
    integers, and 3.0 is not an integer) and VALIDATION_ERROR (enum, pattern, bounds, lengths).
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problem = Problem("input", "must be a JSON object", "TYPE_MISMATCH")
        raise ValidationError("input is invalid", [problem])
    result = dict(data)
    problems: list[Problem] = []
    for name, spec in specs.items():
        field = f"input.{name}"
        if result.get(name) is None and spec.default is not None:
            result[name] = copy.deepcopy(spec.default)  # checked against its spec when it was posted
            continue
        value = result.get(name)
        if value is None:
            if spec.required:
                problems.append(Problem(field, f"{name} is required", "REQUIRED_PARAMETER"))
            continue
        problems.extend(_check_value(spec, value, field))
    if problems:
        raise ValidationError("input is invalid", problems)
    return result


def _check_value(spec: InputSpec, value: Any, field: str) -> list[Problem]:
    """Problems with one present value; a value of the wrong type gets only the TYPE_MISMATCH."""
    if spec.type is not None and not _CHECKS[spec.type](value):
        return [Problem(field, f"must be of type {spec.type}, got {_json_type(value)}", "TYPE_MISMATCH")]
    problems: list[str] = []
    if spec.enum is not None and not any(_json_equal(value, allowed) for allowed in spec.enum):
        problems.append(f"must be one of {list(spec.enum)!r}")
    if spec.pattern is not None and isinstance(value, str):
        found = _searches(spec.pattern, value)
        if found is None:
            problems.append(f"cannot be checked: pattern {spec.pattern!r} is not one RE2 can match")
        elif not found:
            problems.append(f"does not match pattern {spec.pattern!r}")
    if _is_number(value):
        if spec.minimum is not None and value < spec.minimum:
            problems.append(f"must be at least {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            problems.append(f"must be at most {spec.maximum}")
    if isinstance(value, str | list):
        if spec.min_length is not None and len(value) < spec.min_length:
            problems.append(f"must have length at least {spec.min_length}")
        if spec.max_length is not None and len(value) > spec.max_length:
            problems.append(f"must have length at most {spec.max_length}")
    return [Problem(field, message, "VALIDATION_ERROR") for message in problems]


def _json_type(value: Any) -> str:
    for kind in ("boolean", "integer", "number", "string", "object", "array"):
        if _CHECKS[kind](value):
            return kind
    return "null" if value is None else type(value).__name__


def _json_equal(a: Any, b: Any) -> bool:
    # Python says True == 1; JSON does not.
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
