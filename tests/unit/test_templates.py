"""Templates: parsing, typed substitution, interpolation, fallbacks, conditions and hostile input."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import templates
from orchestrator.errors import TemplateError
from orchestrator.templates import Template, check, evaluate_condition, node_refs, parse, render


@pytest.fixture
def scope() -> dict[str, Any]:
    return {
        "input": {
            "user": {"name": "Ada", "role": None, "tags": ["a", "b"]},
            "count": 3,
            "zero": 0,
            "empty": "",
            "flag": True,
            "off": False,
            "none": None,
            "items": [{"sku": "x1"}, {"sku": "x2"}],
            "nothing": [],
            "blank": {},
            "other": "fallback-value",
            "price": 9.5,
            "unicode": "héllo",
        },
        "nodes": {
            "create-account": {"output": {"userId": "u-42", "profile": {"plan": "pro"}}},
            "approve": {"output": {"approved": True, "level": 2}},
        },
        "instance": {"id": "inst-1", "externalId": None},
    }


# --- whole-value substitution keeps the JSON type -------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${input.user}", {"name": "Ada", "role": None, "tags": ["a", "b"]}),
        ("${input.user.tags}", ["a", "b"]),
        ("${input.count}", 3),
        ("${input.price}", 9.5),
        ("${input.flag}", True),
        ("${input.off}", False),
        ("${input.none}", None),
        ("${input.empty}", ""),
        ("${ input.count }", 3),
        ("${42}", 42),
        ("${-7}", -7),
        ("${-1.25}", -1.25),
        ("${null}", None),
        ("${'it\\'s'}", "it's"),
        ('${"a\\"}\\n\\t\\\\"}', 'a"}\n\t\\'),
    ],
)
def test_whole_value_keeps_its_type(scope: dict[str, Any], template: str, expected: Any) -> None:
    result = parse(template).render(scope)
    assert result == expected
    assert type(result) is type(expected)


def test_whole_value_is_a_copy_not_an_alias_of_the_scope(scope: dict[str, Any]) -> None:
    result = parse("${input.user}").render(scope)
    result["name"] = "changed"
    assert scope["input"]["user"]["name"] == "Ada"


def test_list_index_and_node_ids_with_dashes(scope: dict[str, Any]) -> None:
    assert parse("${input.items.1.sku}").render(scope) == "x2"
    assert parse("${input.user.tags.0}").render(scope) == "a"
    assert parse("${nodes.create-account.output.userId}").render(scope) == "u-42"
    assert parse("${nodes.create-account.output}").render(scope) == {
        "userId": "u-42",
        "profile": {"plan": "pro"},
    }


def test_instance_fields(scope: dict[str, Any]) -> None:
    assert parse("${instance.id}").render(scope) == "inst-1"
    assert parse("${instance.externalId}").render(scope) is None
    assert parse("${instance.externalId || instance.id}").render(scope) == "inst-1"


# --- interpolation in longer strings ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello ${input.user.name}!", "Hello Ada!"),
        ("n=${input.count}", "n=3"),
        ("p=${input.price}", "p=9.5"),
        ("role=${input.none}", "role=null"),
        ("flags=${input.flag},${input.off}", "flags=true,false"),
        ("user=${input.user}", 'user={"name":"Ada","role":null,"tags":["a","b"]}'),
        ("tags=${input.user.tags}", 'tags=["a","b"]'),
        ("${input.unicode} ${input.user.tags}", 'héllo ["a","b"]'),
        ("${instance.id}/${nodes.create-account.output.userId}", "inst-1/u-42"),
        (" ${input.count}", " 3"),
        ("${input.count}${input.count}", "33"),
    ],
)
def test_interpolation(scope: dict[str, Any], template: str, expected: str) -> None:
    assert parse(template).render(scope) == expected


def test_dollar_escapes_and_plain_strings(scope: dict[str, Any]) -> None:
    assert (
        parse("costs $5 and $${input.count} is literal").render(scope)
        == "costs $5 and ${input.count} is literal"
    )
    assert parse("$${x}").render(scope) == "${x}"
    # Scanned left to right: a lone "$", then the "$${" escape.
    assert parse("$$${input.count}").render(scope) == "$${input.count}"
    assert parse("$ ${input.count}").render(scope) == "$ 3"
    assert parse("${input.count}$").render(scope) == "3$"
    assert parse("no templates").render(scope) == "no templates"
    assert parse("").render(scope) == ""
    assert not parse("$${x}").is_template
    assert not parse("plain $ {x}").is_template
    assert parse("a ${input.count}").is_template


# --- fallbacks with JavaScript `||` semantics -------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('${input.user.department || "employee"}', "employee"),
        ("${input.missing || 3}", 3),
        ("${input.missing || true}", True),
        ("${input.missing || null}", None),
        ("${input.missing || input.other}", "fallback-value"),
        ("${input.a || input.b || 'third'}", "third"),
        ("${input.zero || 'zero is falsy'}", "zero is falsy"),
        ("${input.empty || 'empty is falsy'}", "empty is falsy"),
        ("${input.none || 'null is falsy'}", "null is falsy"),
        ("${input.off || 'false is falsy'}", "false is falsy"),
        ("${input.nothing || 'empty list is falsy'}", "empty list is falsy"),
        ("${input.blank || 'empty dict is falsy'}", "empty dict is falsy"),
        ("${input.count || 'unused'}", 3),
        ("${input.user.name || input.missing}", "Ada"),
        ("${input.zero || input.empty}", ""),
        ("${0.0 || 'x'}", "x"),
        ("${nodes.ghost.output.id || instance.id}", "inst-1"),
    ],
)
def test_fallbacks(scope: dict[str, Any], template: str, expected: Any) -> None:
    result = parse(template).render(scope)
    assert result == expected
    assert type(result) is type(expected)


def test_fallback_inside_interpolation(scope: dict[str, Any]) -> None:
    assert parse("role: ${input.user.role || 'employee'}").render(scope) == "role: employee"


# --- unresolved paths ---------------------------------------------------------------------------------


def test_missing_path_without_fallback_raises_naming_the_path(scope: dict[str, Any]) -> None:
    with pytest.raises(TemplateError) as excinfo:
        parse("${nodes.approve.output.x}").render(scope)
    assert (
        str(excinfo.value)
        == "template '${nodes.approve.output.x}': path 'nodes.approve.output.x' does not resolve"
    )


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("${nodes.missing-node.output.userId}", "nodes.missing-node.output.userId"),
        ("${input.items.7.sku}", "input.items.7.sku"),
        ("${input.count.x}", "input.count.x"),
        ("${input.user.name.0}", "input.user.name.0"),
        ("${input.user.tags.-1}", "input.user.tags.-1"),
        ("id: ${input.nope}", "input.nope"),
        ("${input.a || input.b}", "input.b"),
    ],
)
def test_unresolved_paths(scope: dict[str, Any], template: str, path: str) -> None:
    with pytest.raises(TemplateError, match=f"path '{path}' does not resolve"):
        parse(template).render(scope)


def test_missing_root_in_scope_is_unresolved() -> None:
    with pytest.raises(TemplateError, match="path 'instance.id' does not resolve"):
        parse("${instance.id}").render({"input": {}})


def test_dunder_path_is_a_key_lookup_never_an_attribute(scope: dict[str, Any]) -> None:
    template = parse("${input.__class__.__mro__}")  # parses: it is just a key path
    with pytest.raises(TemplateError, match=r"path 'input\.__class__\.__mro__' does not resolve"):
        template.render(scope)
    with pytest.raises(TemplateError, match="does not resolve"):
        parse("${input.__class__}").render({"input": {"a": 1}})
    # A key that really is in the dict is found as a key, like any other.
    assert template.render({"input": {"__class__": {"__mro__": "just data"}}}) == "just data"


# --- comparison and negation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${input.count == 3}", True),
        ("${input.count != 3}", False),
        ("${input.user.name == 'Ada'}", True),
        ("${nodes.approve.output.approved == true}", True),
        ("${input.flag == 1}", False),
        ("${input.zero == false}", False),
        ("${input.count == 3.0}", True),
        ("${input.missing == null}", True),
        ("${input.none == null}", True),
        ("${input.user.tags == input.user.tags}", True),
        ("${!input.flag}", False),
        ("${!input.missing}", True),
        ("${!!input.count}", True),
        ("${!(input.count == 3)}", False),
        ("${(input.missing || input.count) == 3}", True),
    ],
)
def test_comparisons(scope: dict[str, Any], template: str, expected: bool) -> None:
    assert parse(template).render(scope) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("${nodes.approve.output.approved}", True),
        ("${nodes.approve.output.level == 2}", True),
        ("${nodes.approve.output.level != 2}", False),
        ("${!nodes.approve.output.approved}", False),
        ("${input.zero}", False),
        ("${input.empty}", False),
        ("${input.user}", True),
        ("${input.nothing}", False),
        ("${input.missing}", False),
        ("${nodes.not-run.output.ok}", False),
        ("${!input.missing}", True),
        ("${input.missing == 'x'}", False),
        ("level ${input.missing}", False),
        ("true", True),
        ("false", False),
        ("", False),
        ("yes", True),
        ("${input.flag}", True),
        ("${input.off}", False),
        ("${input.count}${input.zero}", True),
        ("${input.off}-", True),
        ("${'false'}", True),
    ],
)
def test_evaluate_condition(scope: dict[str, Any], condition: str, expected: bool) -> None:
    assert evaluate_condition(condition, scope) is expected


def test_condition_that_does_not_parse_raises(scope: dict[str, Any]) -> None:
    with pytest.raises(TemplateError):
        evaluate_condition("${input.a +}", scope)


# --- rendering nested configs -------------------------------------------------------------------------


def test_render_nested_config(scope: dict[str, Any]) -> None:
    config: dict[str, Any] = {
        "url": "https://api/${nodes.create-account.output.userId}",
        "body": {"user": "${input.user}", "n": "${input.count}", "${input.count}": "keys are not rendered"},
        "list": ["${input.flag}", 7, None, ["${instance.id}"]],
        "timeout": 30,
    }
    result = render(config, scope)
    assert result == {
        "url": "https://api/u-42",
        "body": {"user": scope["input"]["user"], "n": 3, "${input.count}": "keys are not rendered"},
        "list": [True, 7, None, ["inst-1"]],
        "timeout": 30,
    }
    assert config["body"]["n"] == "${input.count}"  # the input is untouched
    assert render(5, scope) == 5
    assert render(None, scope) is None


def test_render_raises_on_missing_in_nested_config(scope: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="path 'nodes.x.output.y' does not resolve"):
        render({"a": [{"b": "${nodes.x.output.y}"}]}, scope)


# --- malformed and hostile templates fail to parse -----------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "${__import__('os').system('x')}",
        "${input.a()}",
        "${input['a']}",
        "${input.a + 1}",
        "${lambda: 1}",
        "${os.system}",
        "${}",
        "${ }",
        "${input.a",
        "x ${input.a",
        "${input..a}",
        "${input.}",
        "${.input}",
        "${nodes.x}",
        "${nodes}",
        "${nodes.x.status}",
        "${instance.secret}",
        "${instance}",
        "${instance.id.more}",
        "${input.a == 1 == 2}",
        "${input.a ||}",
        "${(input.a}",
        "${input.a)}",
        "${'unterminated}",
        "${'bad \\x escape'}",
        "${input.a input.b}",
        "${input.a && input.b}",
        "${input.a; input.b}",
        "${self}",
        "${globals()}",
        "${input.a.__class__()}",
        "${input.a[0]}",
        "${1 + 1}",
        "${input.a ? 1 : 2}",
        "${`x`}",
        "${input.a}${",
        "ok ${input.a} then ${os}",
    ],
)
def test_malformed_templates_fail_to_parse(template: str) -> None:
    with pytest.raises(TemplateError) as excinfo:
        parse(template)
    message = str(excinfo.value)
    assert message.startswith(f"template '{template}': ")
    assert "position" in message


def test_parse_errors_name_the_problem() -> None:
    with pytest.raises(TemplateError, match=r"unknown name 'os' .* at position 2"):
        parse("${os.system}")
    with pytest.raises(TemplateError, match=r"unknown name '__import__'"):
        parse("${__import__('os')}")
    with pytest.raises(TemplateError, match=r"unterminated '\$\{' at position 4"):
        parse("abc ${input.a")
    with pytest.raises(TemplateError, match=r"empty expression"):
        parse("${}")
    with pytest.raises(TemplateError, match=r"nodes\.<node-id>\.output"):
        parse("${nodes.x}")
    with pytest.raises(TemplateError, match=r"only instance\.id and instance\.externalId"):
        parse("${instance.secret}")
    with pytest.raises(TemplateError, match=r"found '\(' at position 9"):
        parse("${input.a()}")


# --- check() and node_refs ------------------------------------------------------------------------------


def test_check_reports_every_malformed_template_with_its_location() -> None:
    config: dict[str, Any] = {
        "data": {"userId": "${nodes.a.output.id}", "bad": "${input.a +}"},
        "steps": ["ok", "${}", {"deep": "${os.system}"}],
        "ok": "${input.x || 'y'}",
        "n": 5,
    }
    problems = check(config)
    assert [location for location, _ in problems] == [
        "config.data.bad",
        "config.steps[1]",
        "config.steps[2].deep",
    ]
    assert all(message.startswith("template '") for _, message in problems)
    assert check(config["steps"], where="when") == [
        ("when[1]", problems[1][1]),
        ("when[2].deep", problems[2][1]),
    ]
    assert check({"a": "${input.a}", "b": ["$${x}", 1, None]}) == []
    assert check("${") == [("config", "template '${': unterminated '${' at position 0")]


def test_node_refs() -> None:
    assert parse("${nodes.create-account.output.userId}").node_refs == frozenset({"create-account"})
    assert parse("${nodes.a.output || nodes.b.output.x == nodes.c.output}").node_refs == frozenset(
        {"a", "b", "c"}
    )
    assert parse("${input.nodes}").node_refs == frozenset()
    assert parse("$${nodes.a.output}").node_refs == frozenset()
    config: dict[str, Any] = {
        "x": "${nodes.a.output.id} and ${nodes.b.output}",
        "y": ["${!nodes.c.output.ok}", {"z": "${nodes.a.output.other}"}],
        "bad": "${nodes.d.output",
        "n": 1,
    }
    assert node_refs(config) == frozenset({"a", "b", "c"})
    assert node_refs("plain") == frozenset()
    assert node_refs(None) == frozenset()


def test_parse_is_cached_and_returns_a_template() -> None:
    first = parse("${input.cached}")
    assert isinstance(first, Template)
    assert parse("${input.cached}") is first
    assert first.is_template


def test_roots_name_the_first_segment_of_every_path():
    value = {
        "a": "${input.x || nodes.n.output.y}",
        "b": ["plain", "$${input.escaped}"],
        "c": "${instance.id}",
    }
    assert templates.roots(value) == {"input", "nodes", "instance"}
    assert templates.roots({"a": "${nodes.n.output}"}) == {"nodes"}
    assert templates.roots({"a": "no template", "b": "$${input.x}"}) == frozenset()


# --- hostile sizes ---------------------------------------------------------------------------------------


def test_deep_nesting_is_a_template_error_not_a_recursion_error(scope: dict[str, Any]) -> None:
    # Python's recursion limit used to surface as a RecursionError: a 500 instead of a 422.
    for text in ("${" + "!" * 5000 + "true}", "${" + "(" * 5000 + "true" + ")" * 5000 + "}"):
        with pytest.raises(TemplateError, match=r"more than 64 nested"):
            parse(text)
        assert [location for location, _ in check({"deep": text})] == ["config.deep"]
    assert parse("${" + "!" * 64 + "input.flag}").render(scope) is True
    assert parse("${" + "(" * 64 + "input.count" + ")" * 64 + "}").render(scope) == 3


def test_many_escapes_make_one_literal() -> None:
    template = parse("$${" * 300_000 + "x")  # about 1 MiB of escapes, joined once
    assert template.parts == ("${" * 300_000 + "x",)
    assert not template.is_template
