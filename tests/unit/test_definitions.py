"""Workflow definitions: the seed's files parse as-is, and every kind of problem is reported, all at once."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from examples import WORKFLOWS_DIR
from orchestrator.definitions import DEFAULT_VERSION, NodeSpec, WorkflowDefinition, parse_definition
from orchestrator.errors import ValidationError
from orchestrator.executors import executor

WORKFLOWS = WORKFLOWS_DIR


@executor("unit_definitions.ok")
def _ok(ctx: Any, config: dict[str, Any]) -> dict[str, Any]:
    return {}


EXEC = "unit_definitions.ok"


def seed(name: str) -> dict[str, Any]:
    return json.loads((WORKFLOWS / f"{name}.json").read_text())


def node(node_id: str, *deps: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": node_id, "type": "task", "executor": EXEC}
    if deps:
        body["dependsOn"] = list(deps)
    body.update(extra)
    return body


def workflow(*nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "wf", "version": "1.0.0", "nodes": list(nodes), **extra}


def problems(body: Any, **kwargs: Any) -> list[tuple[str, str, str]]:
    with pytest.raises(ValidationError) as info:
        parse_definition(body, **kwargs)
    assert info.value.message == "workflow definition is invalid"
    return [(p.field, p.code, p.message) for p in info.value.problems]


def fields(body: Any, **kwargs: Any) -> list[tuple[str, str]]:
    return [(f, c) for f, c, _ in problems(body, **kwargs)]


# --- the seed's workflows -------------------------------------------------------------------------


def test_user_onboarding_parses_as_is() -> None:
    body = seed("user-onboarding")
    definition = parse_definition(body, check_executors=False)
    assert (definition.name, definition.version) == ("user-onboarding", "1.0.0")
    assert definition.timeout_ms == 1800000
    assert definition.description == "用户入职流程"
    assert [n.id for n in definition.nodes] == [
        "validate-user-data",
        "create-account",
        "setup-permissions",
        "send-welcome-email",
    ]
    create = definition.node("create-account")
    assert create == NodeSpec(
        id="create-account",
        name="创建用户账户",
        type="task",
        executor="userCreator",
        depends_on=("validate-user-data",),
        config={"department": "${input.department}", "role": '${input.role || "employee"}'},
    )
    assert create.retries is None and create.retry_delay_ms == 1000 and create.timeout_ms is None
    assert definition.dependencies["send-welcome-email"] == ("setup-permissions",)
    assert definition.successors["validate-user-data"] == ("create-account",)
    assert definition.successors["send-welcome-email"] == ()
    assert definition.to_json() == body
    assert definition.inputs == {}


def test_data_sync_pipeline_parses_as_is() -> None:
    definition = parse_definition(seed("data-sync-pipeline"), check_executors=False)
    assert [n.executor for n in definition.nodes] == [
        "datasync.sourceValidator",
        "datasync.dataExtractor",
        "datasync.dataTransformer",
        "datasync.dataSyncer",
    ]
    assert definition.nodes[0].name == "validate", "a node without a name is named by its id"


def test_seed_with_unregistered_executors_names_each_one() -> None:
    body = seed("data-sync-pipeline")
    for node in body["nodes"]:  # the example module may be loaded in this process: use names nobody has
        node["executor"] = "unregistered." + node["executor"]
    found = problems(body)
    assert [(f, c) for f, c, _ in found] == [(f"nodes[{i}].executor", "UNKNOWN_EXECUTOR") for i in range(4)]
    assert "unregistered.datasync.sourceValidator" in found[0][2]


def test_the_spec_example_with_inputs_parses() -> None:
    body = seed("user-onboarding")
    body["inputs"] = {
        "email": {"type": "string", "required": True},
        "department": {"type": "string", "required": True},
    }
    definition = parse_definition(body, check_executors=False)
    assert definition.inputs["email"].type == "string" and definition.inputs["email"].required


# --- the parsed value ------------------------------------------------------------------------------


def test_defaults_and_node_fields() -> None:
    definition = parse_definition(
        {
            "name": "wf",
            "nodes": [
                node(
                    "a", retries=3, retryDelay=0, timeout=500, queue="io.slow", when="${input.go}", name="A"
                ),
            ],
        }
    )
    assert definition.version == DEFAULT_VERSION
    assert definition.description is None and definition.timeout_ms is None
    a = definition.node("a")
    assert (a.name, a.retries, a.retry_delay_ms, a.timeout_ms, a.queue, a.when) == (
        "A",
        3,
        0,
        500,
        "io.slow",
        "${input.go}",
    )
    with pytest.raises(KeyError):
        definition.node("nope")


def test_subworkflow_node() -> None:
    definition = parse_definition(
        workflow(
            node("a"),
            {
                "id": "child",
                "type": "subworkflow",
                "dependsOn": ["a"],
                "config": {
                    "workflow": {"name": "other", "version": "2.1.0"},
                    "input": {"x": "${nodes.a.output.x}"},
                },
            },
            {
                "id": "latest-child",
                "type": "subworkflow",
                "config": {"workflow": {"name": "other", "version": "latest"}},
            },
            {"id": "bare-child", "type": "subworkflow", "config": {"workflow": {"name": "other"}}},
        )
    )
    child = definition.node("child")
    assert (child.type, child.executor, child.subworkflow_name, child.subworkflow_version) == (
        "subworkflow",
        None,
        "other",
        "2.1.0",
    )
    assert definition.node("latest-child").subworkflow_version is None
    assert definition.node("bare-child").subworkflow_version is None


def test_unknown_keys_are_accepted_and_kept() -> None:
    body = workflow(node("a", owner="ops"), labels={"team": "x"})
    definition = parse_definition(body)
    assert definition.to_json() == body


def test_parsing_copies_the_body() -> None:
    body = workflow(node("a", config={"k": ["v"]}))
    definition = parse_definition(body)
    body["nodes"][0]["config"]["k"].append("mutated")
    assert definition.node("a").config == {"k": ["v"]}
    assert definition.raw["nodes"][0]["config"] == {"k": ["v"]}
    definition.to_json()["name"] = "changed"
    assert definition.name == definition.raw["name"] == "wf"


def test_content_hash_is_stable_across_key_order_and_changes_with_content() -> None:
    body = workflow(node("a", config={"x": 1, "y": [1, 2]}), node("b", "a"), description="d")
    reordered = json.loads(json.dumps(body, sort_keys=True))
    reordered["nodes"][0] = dict(reversed(list(reordered["nodes"][0].items())))
    assert list(reordered) != list(body)
    first, second = parse_definition(body), parse_definition(reordered)
    assert first.content_hash() == second.content_hash()
    assert len(first.content_hash()) == 64
    changed = copy.deepcopy(body)
    changed["nodes"][0]["config"]["x"] = 2
    assert parse_definition(changed).content_hash() != first.content_hash()


def test_definition_is_frozen() -> None:
    definition = parse_definition(workflow(node("a")))
    assert isinstance(definition, WorkflowDefinition)
    with pytest.raises(AttributeError):
        definition.name = "other"  # type: ignore[misc]


# --- problems ------------------------------------------------------------------------------------


def test_body_must_be_an_object() -> None:
    assert fields([]) == [("definition", "TYPE_MISMATCH")]
    assert fields(None) == [("definition", "TYPE_MISMATCH")]


def test_top_level_fields() -> None:
    assert fields({}) == [("name", "REQUIRED_FIELD"), ("nodes", "REQUIRED_FIELD")]
    assert fields({"name": "bad name", "version": "one", "description": 3, "timeout": 0, "nodes": []}) == [
        ("name", "VALIDATION_ERROR"),
        ("version", "VALIDATION_ERROR"),
        ("description", "TYPE_MISMATCH"),
        ("timeout", "VALIDATION_ERROR"),
        ("nodes", "VALIDATION_ERROR"),
    ]
    assert fields({"name": 5, "version": 1, "timeout": 1.5, "nodes": {}}) == [
        ("name", "TYPE_MISMATCH"),
        ("version", "TYPE_MISMATCH"),
        ("timeout", "TYPE_MISMATCH"),
        ("nodes", "TYPE_MISMATCH"),
    ]


def test_latest_is_not_a_version_a_definition_can_have() -> None:
    assert fields(workflow(node("a"), version="latest")) == [("version", "VALIDATION_ERROR")]


def test_short_versions_are_accepted() -> None:
    assert parse_definition(workflow(node("a"), version="1.0")).version == "1.0"


def test_duplicate_node_ids() -> None:
    found = problems(workflow(node("a"), node("b"), node("a")))
    assert found == [("nodes[2].id", "DUPLICATE_NODE", "duplicate node id 'a' (also nodes[0])")]


def test_node_ids_required_and_well_formed() -> None:
    assert fields(
        workflow(
            {"executor": EXEC},
            node("has space"),
            node("x" * 129),
            node("-dash-first"),
            node(7),
            node("ok_id-2"),
        )
    ) == [
        ("nodes[0].id", "REQUIRED_FIELD"),
        ("nodes[1].id", "VALIDATION_ERROR"),
        ("nodes[2].id", "VALIDATION_ERROR"),
        ("nodes[3].id", "VALIDATION_ERROR"),
        ("nodes[4].id", "TYPE_MISMATCH"),
    ]


def test_unknown_self_and_repeated_dependencies() -> None:
    assert fields(
        workflow(
            node("a"), node("b", "a", "ghost", "b", "a"), node("c", dependsOn="a"), node("d", dependsOn=[1])
        )
    ) == [
        ("nodes[1].dependsOn[1]", "UNKNOWN_DEPENDENCY"),
        ("nodes[1].dependsOn[2]", "VALIDATION_ERROR"),
        ("nodes[1].dependsOn[3]", "VALIDATION_ERROR"),
        ("nodes[2].dependsOn", "TYPE_MISMATCH"),
        ("nodes[3].dependsOn[0]", "TYPE_MISMATCH"),
    ]


def test_cycle_is_reported_once_with_its_path() -> None:
    found = problems(workflow(node("a", "c"), node("b", "a"), node("c", "b"), node("d", "c")))
    assert found == [("nodes", "CYCLE", "cycle: a -> b -> c -> a")]


def test_separate_cycles_are_each_reported() -> None:
    found = problems(workflow(node("a", "b"), node("b", "a"), node("x", "y"), node("y", "x")))
    assert [m for _, _, m in found] == ["cycle: a -> b -> a", "cycle: x -> y -> x"]


def test_node_types_and_executors() -> None:
    assert fields(
        workflow(
            {"id": "a", "type": "lambda"},
            {"id": "b"},
            node("c", executor=""),
            node("d", executor=["x"]),
            node("e", executor="nobody.registered"),
        )
    ) == [
        ("nodes[0].type", "VALIDATION_ERROR"),
        ("nodes[1].executor", "REQUIRED_FIELD"),
        ("nodes[2].executor", "VALIDATION_ERROR"),
        ("nodes[3].executor", "TYPE_MISMATCH"),
        ("nodes[4].executor", "UNKNOWN_EXECUTOR"),
    ]


def test_check_executors_false_skips_only_the_registry() -> None:
    assert parse_definition(workflow(node("a", executor="nobody.registered")), check_executors=False)
    assert fields(workflow({"id": "a"}), check_executors=False) == [("nodes[0].executor", "REQUIRED_FIELD")]


def test_subworkflow_problems() -> None:
    assert fields(
        workflow(
            {"id": "a", "type": "subworkflow"},
            {"id": "b", "type": "subworkflow", "config": {"workflow": "other"}},
            {"id": "c", "type": "subworkflow", "config": {"workflow": {"version": "x"}, "input": []}},
        )
    ) == [
        ("nodes[0].config.workflow", "REQUIRED_FIELD"),
        ("nodes[1].config.workflow", "TYPE_MISMATCH"),
        ("nodes[2].config.input", "TYPE_MISMATCH"),
        ("nodes[2].config.workflow.name", "REQUIRED_FIELD"),
        ("nodes[2].config.workflow.version", "VALIDATION_ERROR"),
    ]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"retries": True}, ("nodes[0].retries", "TYPE_MISMATCH")),
        ({"retries": -1}, ("nodes[0].retries", "VALIDATION_ERROR")),
        ({"retries": 101}, ("nodes[0].retries", "VALIDATION_ERROR")),
        ({"retries": 2.0}, ("nodes[0].retries", "TYPE_MISMATCH")),
        ({"retryDelay": -1}, ("nodes[0].retryDelay", "VALIDATION_ERROR")),
        ({"retryDelay": False}, ("nodes[0].retryDelay", "TYPE_MISMATCH")),
        ({"timeout": 0}, ("nodes[0].timeout", "VALIDATION_ERROR")),
        ({"queue": "has space"}, ("nodes[0].queue", "VALIDATION_ERROR")),
        ({"queue": "q" * 65}, ("nodes[0].queue", "VALIDATION_ERROR")),
        ({"when": True}, ("nodes[0].when", "TYPE_MISMATCH")),
        ({"config": []}, ("nodes[0].config", "TYPE_MISMATCH")),
        ({"name": 1}, ("nodes[0].name", "TYPE_MISMATCH")),
    ],
)
def test_node_field_problems(extra: dict[str, Any], expected: tuple[str, str]) -> None:
    assert fields(workflow(node("a", **extra))) == [expected]


def test_retries_bounds_are_inclusive() -> None:
    definition = parse_definition(workflow(node("a", retries=0), node("b", retries=100)))
    assert [n.retries for n in definition.nodes] == [0, 100]


def test_nodes_must_be_objects() -> None:
    assert fields(workflow(node("a"), "b")) == [("nodes[1]", "TYPE_MISMATCH")]


def test_malformed_templates_are_located() -> None:
    found = problems(
        workflow(
            node(
                "a",
                config={"ok": "${input.x}", "deep": {"list": ["x", "${input."]}, "bad": "${nope.x}"},
                when="${input.a ||}",
            )
        )
    )
    assert [(f, c) for f, c, _ in found] == [
        ("nodes[0].config.deep.list[1]", "TEMPLATE_ERROR"),
        ("nodes[0].config.bad", "TEMPLATE_ERROR"),
        ("nodes[0].when", "TEMPLATE_ERROR"),
    ]


def test_node_refs_must_name_an_upstream_node() -> None:
    found = problems(
        workflow(
            node("a"),
            node("b", "a", config={"fine": "${nodes.a.output.x}"}),
            node("c", "b", config={"transitive": "${nodes.a.output.x}", "ghost": "${nodes.zz.output}"}),
            node("d", "a", config={"sibling": "${nodes.b.output.y}", "later": ["${nodes.e.output}"]}),
            node("e", "d", when="${nodes.e.output.ok}"),
        )
    )
    assert [(f, c) for f, c, _ in found] == [
        ("nodes[2].config.ghost", "TEMPLATE_ERROR"),
        ("nodes[3].config.sibling", "TEMPLATE_ERROR"),
        ("nodes[3].config.later[0]", "TEMPLATE_ERROR"),
        ("nodes[4].when", "TEMPLATE_ERROR"),
    ]
    messages = [m for _, _, m in found]
    assert "unknown node 'zz'" in messages[0]
    assert "'b', which is not upstream of 'd'" in messages[1]
    assert "is not upstream of 'e'" in messages[3]


def test_node_ref_in_a_fallback_is_checked_too() -> None:
    assert fields(workflow(node("a"), node("b", config={"v": "${input.v || nodes.a.output.v}"}))) == [
        ("nodes[1].config.v", "TEMPLATE_ERROR")
    ]


def test_many_problems_at_once() -> None:
    body = {
        "name": "",
        "version": "latest",
        "inputs": {"email": {"type": "email"}},
        "nodes": [
            node("a", "c"),
            node("b", "a", "ghost", executor="nobody.registered"),
            node("c", "b", config={"x": "${input."}),
            node("a"),
            node("d", config={"y": "${nodes.b.output.v}"}, retries=True),
        ],
    }
    assert fields(body) == [
        ("name", "VALIDATION_ERROR"),
        ("version", "VALIDATION_ERROR"),
        ("inputs.email.type", "VALIDATION_ERROR"),
        ("nodes[3].id", "DUPLICATE_NODE"),
        ("nodes[1].dependsOn[1]", "UNKNOWN_DEPENDENCY"),
        ("nodes[1].executor", "UNKNOWN_EXECUTOR"),
        ("nodes[2].config.x", "TEMPLATE_ERROR"),
        ("nodes[4].retries", "TYPE_MISMATCH"),
        ("nodes", "CYCLE"),
        ("nodes[4].config.y", "TEMPLATE_ERROR"),
    ]


def test_not_plain_json_is_a_problem() -> None:
    assert fields(workflow(node("a", config={"n": float("nan")}))) == [("definition", "VALIDATION_ERROR")]


def test_a_5000_node_chain_with_references_parses_quickly() -> None:
    nodes = [node("n0")] + [
        node(
            f"n{i}",
            f"n{i - 1}",
            config={"v": f"${{nodes.n{i - 1}.output.v}}", "root": "${nodes.n0.output.v}"},
        )
        for i in range(1, 5000)
    ]
    definition = parse_definition(workflow(*nodes))
    assert len(definition.nodes) == 5000
    assert definition.successors["n4998"] == ("n4999",)


# --- 10,000 nodes (what a 1 MiB body holds): the answers stay right -------------------------------
# How long they take is measured by `python -m bench.validation`, not asserted here.

BIG = 10_000


def out(node_id: str) -> str:
    return f"${{nodes.{node_id}.output}}"


def big_chain(reads: Any = lambda i: i // 2) -> list[dict[str, Any]]:
    """n0 <- n1 <- ... ; node i reads node reads(i), by default one far upstream."""
    after = [node(f"n{i}", f"n{i - 1}", config={"v": out(f"n{reads(i)}")}) for i in range(1, BIG)]
    return [node("n0"), *after]


def test_a_10000_node_chain_reading_far_upstream_is_valid() -> None:
    definition = parse_definition(workflow(*big_chain()))
    assert len(definition.nodes) == BIG
    assert definition.node("n9999").node_refs == frozenset({"n4999"})


def test_a_10000_node_chain_still_refuses_reading_downstream() -> None:
    found = problems(workflow(*big_chain(lambda i: i + 1 if i == 5000 else i // 2)))
    assert found == [
        (
            "nodes[5000].config.v",
            "TEMPLATE_ERROR",
            "template refers to node 'n5001', which is not upstream of 'n5000' (add it to dependsOn)",
        )
    ]


def test_a_10000_node_fan_out_and_in() -> None:
    middle = [f"m{i}" for i in range(BIG - 2)]
    nodes = [node("root")] + [node(m, "root", config={"r": out("root")}) for m in middle]
    join = node("join", *middle, config={"all": [out(m) for m in middle], "root": out("root")})
    assert len(parse_definition(workflow(*nodes, join)).nodes) == BIG
    nodes[1 + 7000]["config"]["sibling"] = out("m7001")  # m7000 reads a node beside it
    found = problems(workflow(*nodes, join))
    assert [(f, c) for f, c, _ in found] == [("nodes[7001].config.sibling", "TEMPLATE_ERROR")]
    assert "'m7001', which is not upstream of 'm7000'" in found[0][2]


def test_a_10000_node_cycle_is_reported_with_every_node_and_reads_along_it_are_upstream() -> None:
    nodes = big_chain()
    nodes[0]["dependsOn"] = [f"n{BIG - 1}"]
    # besides the ring: `late` depends on the ring, `stray` does not and reads `late`
    nodes.append(node("late", "n42", config={"v": out("n9000")}))
    nodes.append(node("stray", config={"v": out("late")}))
    found = problems(workflow(*nodes))
    assert [(f, c) for f, c, _ in found] == [("nodes", "CYCLE"), ("nodes[10001].config.v", "TEMPLATE_ERROR")]
    assert found[0][2] == "cycle: " + " -> ".join([f"n{i}" for i in range(BIG)] + ["n0"])
    assert "'late', which is not upstream of 'stray'" in found[1][2]


def test_thousands_of_separate_cycles_report_the_first_ten() -> None:
    pairs = [node(f"a{i}", f"b{i}") for i in range(BIG // 2)] + [
        node(f"b{i}", f"a{i}") for i in range(BIG // 2)
    ]
    found = problems(workflow(*pairs))
    assert [m for _, _, m in found] == [f"cycle: a{i} -> b{i} -> a{i}" for i in range(10)]
