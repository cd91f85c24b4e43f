"""Workflow definitions: the seed's JSON shape, validated in full and parsed into frozen dataclasses.

`parse_definition` reports every problem at once, so a user fixes a definition in one round trip.
Unknown keys (top level and per node) are accepted and kept in `raw`, as the seed's JSON may carry them.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from orchestrator import dag, executors, semver, templates
from orchestrator.errors import Problem, ValidationError
from orchestrator.inputs import InputSpec, parse_input_specs

__all__ = ["InputSpec", "NodeSpec", "WorkflowDefinition", "parse_definition", "DEFAULT_VERSION"]

DEFAULT_VERSION = "1.0.0"  # a definition posted without `version`
DEFAULT_RETRY_DELAY_MS = 1000
NODE_TYPES = ("task", "subworkflow")
_INVALID = "workflow definition is invalid"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", re.ASCII)
_NODE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,127}", re.ASCII)
_QUEUE = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)
_MAX_VERSION_LENGTH = 64  # the store's column
_MAX_EXECUTOR_LENGTH = 255
_MAX_DESCRIPTION_LENGTH = 16_000  # the store's TEXT column holds 65,535 bytes: 4-byte characters fit
_MAX_CYCLES_REPORTED = 10
# durations are milliseconds; bounded so that deadlines and Celery time limits never overflow
MAX_DURATION_MS = 10 * 365 * 24 * 3600 * 1000


@dataclass(frozen=True)
class NodeSpec:
    """One node. `retries` None means "the instance's maxRetries, else 0"; `subworkflow_version` None
    means the child workflow's latest version."""

    id: str
    name: str
    type: str = "task"
    executor: str | None = None
    depends_on: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    retries: int | None = None
    retry_delay_ms: int = DEFAULT_RETRY_DELAY_MS
    timeout_ms: int | None = None
    queue: str | None = None
    when: str | None = None
    subworkflow_name: str | None = None
    subworkflow_version: str | None = None

    @functools.cached_property
    def node_refs(self) -> frozenset[str]:
        """The nodes whose outputs this node's config and `when` read (worked out once per node)."""
        return templates.node_refs(self.config) | templates.node_refs(self.when or "")

    @functools.cached_property
    def reads_instance(self) -> bool:
        """Whether the config or `when` names `input` or `instance`: if not, running this node needs
        neither the instance's input nor its externalId."""
        return bool((templates.roots(self.config) | templates.roots(self.when or "")) & {"input", "instance"})


@dataclass(frozen=True)
class WorkflowDefinition:
    """A valid definition. `raw` is the body exactly as posted (unknown keys included, no defaults added).

    `dependencies` and `successors` are computed once and shared: read them, do not mutate them.
    """

    name: str
    version: str
    description: str | None
    timeout_ms: int | None
    inputs: dict[str, InputSpec]
    nodes: tuple[NodeSpec, ...]
    raw: dict[str, Any] = field(repr=False)
    _by_id: dict[str, NodeSpec] = field(init=False, repr=False, compare=False)
    _dependencies: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _successors: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Frozen: the derived maps are set once here, never reassigned.
        dependencies = {node.id: node.depends_on for node in self.nodes}
        object.__setattr__(self, "_by_id", {node.id: node for node in self.nodes})
        object.__setattr__(self, "_dependencies", dependencies)
        object.__setattr__(self, "_successors", dag.successors(dependencies))

    def node(self, node_id: str) -> NodeSpec:
        """The node with this id; raises KeyError if there is none."""
        return self._by_id[node_id]

    @property
    def dependencies(self) -> dict[str, tuple[str, ...]]:
        """Node id -> the ids it depends on, in definition order."""
        return self._dependencies

    @property
    def successors(self) -> dict[str, tuple[str, ...]]:
        """Node id -> the ids that depend on it directly, in definition order."""
        return self._successors

    @property
    def sinks(self) -> frozenset[str]:
        """The nodes nothing depends on. Every node precedes a sink, and a sink ends only after all
        of its dependencies, so an instance is done when its sinks are."""
        return frozenset(node for node, after in self._successors.items() if not after)

    def content_hash(self) -> str:
        """sha256 hex of the canonical JSON of `raw`: the same content hashes the same, whatever key order."""
        return hashlib.sha256(_canonical_json(self.raw)).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """A copy of the body as it was posted."""
        return copy.deepcopy(self.raw)


def _canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


class _Report(list[Problem]):
    def add(self, where: str, message: str, code: str = "VALIDATION_ERROR") -> None:
        self.append(Problem(where, message, code))


def parse_definition(body: Any, *, check_executors: bool = True, stored: bool = False) -> WorkflowDefinition:
    """The definition in `body`; raises ValidationError("workflow definition is invalid") listing every
    problem, with `field` paths such as `nodes[2].dependsOn[0]` or `inputs.email.type`.

    `check_executors=False` skips the executor registry lookup (for processes without executor modules).
    `stored=True` reads a body that was valid when it was posted: checks added since (input patterns
    must suit RE2) are not applied to it again, so an upgrade never makes a stored definition unreadable.
    """
    if not isinstance(body, dict):
        raise ValidationError(_INVALID, [Problem("definition", "must be a JSON object", "TYPE_MISMATCH")])
    report = _Report()
    name = _required_str(body, "name", "name", report, _NAME, "a name of letters, digits, '_', '.', '-'")
    version = _version(body.get("version"), report)
    description = _optional_str(body, "description", "description", report)
    if description is not None and len(description) > _MAX_DESCRIPTION_LENGTH:
        report.add("description", f"must be at most {_MAX_DESCRIPTION_LENGTH} characters")
    timeout_ms = _optional_int(body, "timeout", "timeout", report, minimum=1, maximum=MAX_DURATION_MS)
    inputs, input_problems = parse_input_specs(body.get("inputs"), "inputs", stored=stored)
    report.extend(input_problems)
    nodes = _parse_nodes(body.get("nodes"), report, check_executors)
    try:
        _canonical_json(body)
    except (TypeError, ValueError) as exc:
        report.add("definition", f"is not plain JSON: {exc}")
    if report or name is None:
        raise ValidationError(_INVALID, list(report))
    raw = copy.deepcopy(body)
    return WorkflowDefinition(name, version, description, timeout_ms, inputs, tuple(nodes), raw)


def _required_str(
    obj: dict[str, Any],
    key: str,
    where: str,
    report: _Report,
    pattern: re.Pattern[str] | None = None,
    what: str = "",
) -> str | None:
    if obj.get(key) is None:
        report.add(where, "is required", "REQUIRED_FIELD")
        return None
    return _optional_str(obj, key, where, report, pattern, what)


def _optional_str(
    obj: dict[str, Any],
    key: str,
    where: str,
    report: _Report,
    pattern: re.Pattern[str] | None = None,
    what: str = "",
) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        report.add(where, "must be a string", "TYPE_MISMATCH")
        return None
    if pattern is not None and not pattern.fullmatch(value):
        report.add(where, f"{value!r} is not valid: expected {what}")
        return None
    return value


def _optional_int(
    obj: dict[str, Any], key: str, where: str, report: _Report, minimum: int, maximum: int | None = None
) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        report.add(where, "must be an integer", "TYPE_MISMATCH")
        return None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        report.add(where, f"must be {bounds}, got {value}")
        return None
    return value


def _version(value: Any, report: _Report, where: str = "version", allow_latest: bool = False) -> str:
    if value is None:
        return DEFAULT_VERSION
    if not isinstance(value, str):
        report.add(where, 'must be a string such as "1.0.0"', "TYPE_MISMATCH")
    elif value == "latest" and not allow_latest:
        report.add(where, "'latest' is how a lookup asks for the highest version; give a real version")
    elif value != "latest" and (not semver.is_valid(value) or len(value) > _MAX_VERSION_LENGTH):
        report.add(where, f"{value!r} is not a semantic version such as 1.0.0")
    return value if isinstance(value, str) else DEFAULT_VERSION


def _parse_nodes(raw: Any, report: _Report, check_executors: bool) -> list[NodeSpec]:
    if raw is None:
        report.add("nodes", "is required", "REQUIRED_FIELD")
        return []
    if not isinstance(raw, list):
        report.add("nodes", "must be an array of nodes", "TYPE_MISMATCH")
        return []
    if not raw:
        report.add("nodes", "must list at least one node")
        return []
    ids = _node_ids(raw, report)
    known = {node_id for node_id in ids if node_id}
    nodes = [
        _parse_node(body, i, ids[i], known, report, check_executors)
        for i, body in enumerate(raw)
        if isinstance(body, dict)
    ]
    # The graph of first occurrences: duplicates are already reported and would only repeat problems.
    graph: dict[str, tuple[str, ...]] = {}
    for node in nodes:
        graph.setdefault(node.id, node.depends_on)
    graph.pop("", None)
    _report_cycles(graph, report)
    _report_node_refs(nodes, graph, report)
    return nodes


def _node_ids(raw: list[Any], report: _Report) -> list[str]:
    """Each node's id, "" where it is missing or invalid; reports those and duplicates."""
    ids: list[str] = []
    first: dict[str, int] = {}
    for i, body in enumerate(raw):
        if not isinstance(body, dict):
            report.add(f"nodes[{i}]", "must be an object", "TYPE_MISMATCH")
            ids.append("")
            continue
        node_id = (
            _required_str(
                body,
                "id",
                f"nodes[{i}].id",
                report,
                _NODE_ID,
                "an id of letters, digits, '_' and '-', at most 128 long",
            )
            or ""
        )
        if node_id in first:
            report.add(
                f"nodes[{i}].id",
                f"duplicate node id {node_id!r} (also nodes[{first[node_id]}])",
                "DUPLICATE_NODE",
            )
        elif node_id:
            first[node_id] = i
        ids.append(node_id)
    return ids


def _parse_node(
    body: dict[str, Any], i: int, node_id: str, known: set[str], report: _Report, check_executors: bool
) -> NodeSpec:
    """A best-effort NodeSpec (only used when `report` stays empty) and every problem of the node."""
    where = f"nodes[{i}]"
    kind = "task" if body.get("type") is None else body["type"]
    if kind not in NODE_TYPES:
        report.add(f"{where}.type", f"{kind!r} is not a node type; use task or subworkflow")
    config = body.get("config")
    if config is None:
        config = {}
    elif not isinstance(config, dict):
        report.add(f"{where}.config", "must be an object", "TYPE_MISMATCH")
        config = {}
    depends_on = _depends_on(body.get("dependsOn"), where, node_id, known, report)
    executor = _executor(body, where, report, check_executors) if kind == "task" else None
    sub_name, sub_version = _subworkflow(config, where, report) if kind == "subworkflow" else (None, None)
    when = _optional_str(body, "when", f"{where}.when", report)
    for location, message in [
        *templates.check(config, f"{where}.config"),
        *templates.check(when, f"{where}.when"),
    ]:
        report.add(location, message, "TEMPLATE_ERROR")
    retry_delay = _optional_int(
        body, "retryDelay", f"{where}.retryDelay", report, minimum=0, maximum=MAX_DURATION_MS
    )
    return NodeSpec(
        id=node_id,
        name=_optional_str(body, "name", f"{where}.name", report) or node_id,
        type=kind if isinstance(kind, str) else "task",
        executor=executor,
        depends_on=depends_on,
        config=copy.deepcopy(config),
        retries=_optional_int(body, "retries", f"{where}.retries", report, minimum=0, maximum=100),
        retry_delay_ms=DEFAULT_RETRY_DELAY_MS if retry_delay is None else retry_delay,
        timeout_ms=_optional_int(
            body, "timeout", f"{where}.timeout", report, minimum=1, maximum=MAX_DURATION_MS
        ),
        queue=_optional_str(body, "queue", f"{where}.queue", report, _QUEUE, "1-64 letters, digits, '_.-'"),
        when=when,
        subworkflow_name=sub_name,
        subworkflow_version=sub_version,
    )


def _executor(body: dict[str, Any], where: str, report: _Report, check_executors: bool) -> str | None:
    name = _required_str(body, "executor", f"{where}.executor", report)
    if name is None:
        return None
    if not name or len(name) > _MAX_EXECUTOR_LENGTH:
        report.add(f"{where}.executor", f"must be 1 to {_MAX_EXECUTOR_LENGTH} characters long")
    elif check_executors and not executors.is_registered(name):
        report.add(f"{where}.executor", f"no executor is registered as {name!r}", "UNKNOWN_EXECUTOR")
    return name


def _subworkflow(config: dict[str, Any], where: str, report: _Report) -> tuple[str | None, str | None]:
    workflow = config.get("workflow")
    if not isinstance(workflow, dict):
        code = "REQUIRED_FIELD" if workflow is None else "TYPE_MISMATCH"
        report.add(f"{where}.config.workflow", "a subworkflow needs config.workflow: {name, version}", code)
        return None, None
    if config.get("input") is not None and not isinstance(config["input"], dict):
        report.add(f"{where}.config.input", "must be an object", "TYPE_MISMATCH")
    name = _required_str(workflow, "name", f"{where}.config.workflow.name", report, _NAME, "a workflow name")
    version = workflow.get("version")
    if version is not None:
        _version(version, report, f"{where}.config.workflow.version", allow_latest=True)
    return name, version if isinstance(version, str) and version != "latest" else None


def _depends_on(raw: Any, where: str, node_id: str, known: set[str], report: _Report) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        report.add(f"{where}.dependsOn", "must be an array of node ids", "TYPE_MISMATCH")
        return ()
    kept: dict[str, None] = {}
    for k, dep in enumerate(raw):
        at = f"{where}.dependsOn[{k}]"
        if not isinstance(dep, str):
            report.add(at, "must be a node id string", "TYPE_MISMATCH")
        elif dep == node_id:
            report.add(at, f"node {node_id!r} cannot depend on itself")
        elif dep in kept:
            report.add(at, f"{dep!r} is listed twice")
        elif dep not in known:
            report.add(at, f"unknown node {dep!r}", "UNKNOWN_DEPENDENCY")
        else:
            kept[dep] = None
    return tuple(kept)


def _report_cycles(graph: dict[str, tuple[str, ...]], report: _Report) -> None:
    """Report each cycle once (up to a limit), as a path in execution order."""
    for _ in range(_MAX_CYCLES_REPORTED):
        cycle = dag.find_cycle(graph)
        if cycle is None:
            return
        report.add("nodes", "cycle: " + " -> ".join(cycle), "CYCLE")
        # Dropping the cycle's nodes lets the next search find a cycle elsewhere, not the same one again.
        # (A set: a cycle through 10,000 nodes would make a list lookup per node quadratic.)
        dropped = set(cycle)
        graph = {node: deps for node, deps in graph.items() if node not in dropped}


def _report_node_refs(nodes: list[NodeSpec], graph: dict[str, tuple[str, ...]], report: _Report) -> None:
    """A node may read `nodes.<id>.output` only of a node it (transitively) depends on: others may not
    have run yet, or may never run. One pass over the graph answers every read (see `dag.Ancestry`)."""
    reads = [
        (node, list(_refs(node.config, f"nodes[{i}].config", node.when, f"nodes[{i}].when")))
        for i, node in enumerate(nodes)
    ]
    ancestry = dag.Ancestry(graph, targets={ref for _, found in reads for _, ref in found if ref in graph})
    for node, found in reads:
        upstream = ancestry.through(node.depends_on)
        for location, ref in found:
            if ref not in graph:
                report.add(location, f"template refers to unknown node {ref!r}", "TEMPLATE_ERROR")
            elif ref not in upstream:
                report.add(
                    location,
                    f"template refers to node {ref!r}, which is not upstream of {node.id!r}"
                    " (add it to dependsOn)",
                    "TEMPLATE_ERROR",
                )


def _refs(config: Any, config_at: str, when: str | None, when_at: str) -> Iterator[tuple[str, str]]:
    for location, text in [*templates.strings_in(config, config_at), *templates.strings_in(when, when_at)]:
        for ref in sorted(templates.node_refs(text)):
            yield location, ref
