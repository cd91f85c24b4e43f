"""The input paths a definition's templates cannot do without, checked when an instance is created.

A node whose config reads `${input.permissions}` with no `||` fallback fails when it runs if the
input has no `permissions`, after the nodes before it have done their work (created an account...).
That is knowable from the input alone, so create refuses it: 422, code `REQUIRED_PARAMETER`, field
`input.permissions`, and the message names the node that needs it.

A path is needed exactly when rendering would fail on its absence (`templates.py`), no more, so a
valid input is never refused:

- a path into `input` used as a value (`${input.a.b}`, whole or inside a longer string) must
  resolve in the validated input (defaults applied): every key, and list indexes, down to its end;
- in `a || b || c` only the last item can fail, and only if every item before it is falsy: an item
  before it that resolves to a truthy input value, a truthy literal, or anything the input alone
  does not decide (a node output, `instance.*`, `!`, `==`) may be truthy, and then nothing is needed;
- `!`, `==` and `!=` never fail (a missing path reads as null there);
- a `when` never fails (a missing path makes it false and skips the node), so it needs nothing; a
  node whose `when` reads only `input` and is false for this input is skipped, so its config needs
  nothing either. A `when` that reads node outputs cannot be decided yet: the config is checked.
- a sub-workflow node's `config.input` is part of its config and checked the same way (the child's
  own inputs are checked when the child is created).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from orchestrator import templates
from orchestrator.definitions import WorkflowDefinition
from orchestrator.errors import Problem, TemplateError, ValidationError

_ABSENT = object()
_CACHE_SIZE = 1024


@dataclass(frozen=True)
class _Use:
    """One `${...}` of a node's config that reads `input`."""

    node_id: str
    when: str | None
    location: str  # e.g. config.data.name
    expr: templates.Expr


@dataclass(frozen=True)
class _Plan:
    definition: WorkflowDefinition  # held, so its id() is not reused while the plan is cached
    uses: tuple[_Use, ...]


_plans: dict[int, _Plan] = {}


def check(definition: WorkflowDefinition, data: dict[str, Any]) -> None:
    """Raise ValidationError (422) with one REQUIRED_PARAMETER problem per input path that a node
    needs and `data` (the validated input, defaults applied) does not have."""
    problems = missing(definition, data)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ValidationError(f"input is invalid: {problems[0].message}{more}", problems)


def missing(definition: WorkflowDefinition, data: dict[str, Any]) -> list[Problem]:
    """One problem per input path needed and absent (field `input.<path>`), naming the first node
    that needs it (in definition order) and how many others do."""
    needed: dict[str, list[_Use]] = {}
    decided: dict[str, bool] = {}  # node id -> skipped for this input, worked out once per node
    for use in _plan(definition).uses:
        if use.when is not None:
            if use.node_id not in decided:
                decided[use.node_id] = _skipped(use.when, data)
            if decided[use.node_id]:
                continue
        path = _needed(use.expr, data)
        if path is not None:
            needed.setdefault("input." + ".".join(path.segments[1:]), []).append(use)
    return [_problem(field, uses) for field, uses in needed.items()]


def _problem(field: str, uses: list[_Use]) -> Problem:
    first = uses[0]
    others = len({use.node_id for use in uses} - {first.node_id})
    more = f" (and {others} other node{'s' if others > 1 else ''})" if others else ""
    return Problem(
        field,
        f"{field} is required: node {first.node_id!r} needs it for {first.location}{more}"
        " (no default, and no '||' fallback to use instead)",
        "REQUIRED_PARAMETER",
    )


def _plan(definition: WorkflowDefinition) -> _Plan:
    """The input-reading expressions of a definition, found once per (cached) definition object."""
    plan = _plans.get(id(definition))
    if plan is None or plan.definition is not definition:
        plan = _Plan(definition, tuple(_uses(definition)))
        if len(_plans) >= _CACHE_SIZE:
            _plans.clear()
        _plans[id(definition)] = plan
    return plan


def _uses(definition: WorkflowDefinition) -> Iterator[_Use]:
    for node in definition.nodes:
        for location, text in templates.strings_in(node.config, "config"):
            try:
                template = templates.parse(text)
            except TemplateError:  # a stored definition parses; nothing to check in one that does not
                continue
            if "input" in template.roots:
                for part in template.parts:
                    if not isinstance(part, str):
                        yield _Use(node.id, node.when, location, part)


def _skipped(when: str, data: dict[str, Any]) -> bool:
    """Whether the node will be skipped whatever runs before it: its `when` reads only `input`
    (or nothing) and is false for this input."""
    try:
        if templates.roots(when) - {"input"}:
            return False
        return not templates.evaluate_condition(when, {"input": data})
    except TemplateError:
        return False


def _needed(expr: templates.Expr, data: dict[str, Any]) -> templates.PathNode | None:
    """The input path whose absence makes `expr` unresolvable for this input, or None."""
    if isinstance(expr, templates.PathNode):
        if expr.segments[0] == "input" and _value(expr, data) is _ABSENT:
            return expr
        return None
    if isinstance(expr, templates.OrNode):
        if any(_may_be_truthy(item, data) for item in expr.items[:-1]):
            return None
        return _needed(expr.items[-1], data)
    return None  # literals, `!`, `==`, `!=` always have a value


def _may_be_truthy(expr: templates.Expr, data: dict[str, Any]) -> bool:
    if isinstance(expr, templates.LiteralNode):
        return templates.truthy(expr.value)
    if isinstance(expr, templates.PathNode) and expr.segments[0] == "input":
        value = _value(expr, data)
        return value is not _ABSENT and templates.truthy(value)
    if isinstance(expr, templates.OrNode):
        return any(_may_be_truthy(item, data) for item in expr.items)
    return True  # not decided by the input alone


def _value(path: templates.PathNode, data: dict[str, Any]) -> Any:
    """The value at `input.<...>` as rendering looks it up (dict keys, list indexes), or _ABSENT."""
    current: Any = data
    for seg in path.segments[1:]:
        if isinstance(current, dict) and seg in current:
            current = current[seg]
        elif isinstance(current, list) and seg.isdigit() and int(seg) < len(current):
            current = current[int(seg)]
        else:
            return _ABSENT
    return current
