"""Workflow definitions: the seed's JSON shape, validated in full and parsed into frozen dataclasses.

`parse_definition` reports every problem at once, so a user fixes a definition in one round trip.
Unknown keys (top level and per node) are accepted and kept in `raw`, as the seed's JSON may carry them.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator import dag, errors, executors, limits, semver, templates
from orchestrator.errors import Problem, ValidationError
from orchestrator.inputs import InputSpec, parse_input_specs
from orchestrator.limits import Declared, KeyLimit

__all__ = ["InputSpec", "NodeSpec", "WorkflowDefinition", "parse_definition", "DEFAULT_VERSION"]

DEFAULT_VERSION = "1.0.0"  # a definition posted without `version`
DEFAULT_RETRY_DELAY_MS = 1000
NODE_TYPES = ("task", "subworkflow", "map", "wait", "sleep")
# what a map's `node` may be: one execution per item
ITEM_TYPES = ("task", "subworkflow")
MAX_MAP_ITEMS = 10_000
ON_ITEM_FAILURE = ("fail", "continue")
_INVALID = "workflow definition is invalid"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", re.ASCII)
_NODE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,127}", re.ASCII)
# a map's item `<map>[<index>]` is a node row of its own: its id must fit the same column
_MAX_MAP_ID_LENGTH = 120
_ITEM_ID = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_-]{0,119})\[([0-9]{1,5})\]", re.ASCII)
_SIGNAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}", re.ASCII)
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
    # map: the template of the list, the body run once per item, and how items are run
    over: str | None = None
    item: NodeSpec | None = None
    max_concurrency: int | None = None
    on_item_failure: str = "fail"
    # wait: the signal that completes it; `timeout_ms` is how long it waits (None: for ever), and
    # `on_timeout` ({"output": ...}) completes it with that output instead of failing it
    signal: str | None = None
    on_timeout: dict[str, Any] | None = None
    # sleep: how long, or until when (ISO 8601, or a template that renders to one)
    duration_ms: int | None = None
    until: str | None = None
    # its own `concurrency` and `rate` (`limits.py`); None: none
    limits: Declared | None = None

    def _templated(self) -> list[Any]:
        # every value of the node a template may be in, the item body's included
        own: list[Any] = [self.config, self.when or "", self.over or "", self.until or ""]
        return own if self.item is None else [*own, self.item.config, self.item.when or ""]

    @functools.cached_property
    def node_refs(self) -> frozenset[str]:
        """The nodes whose outputs this node's templates read (worked out once per node)."""
        return frozenset().union(*(templates.node_refs(value) for value in self._templated()))

    @functools.cached_property
    def reads_instance(self) -> bool:
        """Whether the templates name `input` or `instance`: if not, running this node needs neither
        the instance's input nor its externalId."""
        found = frozenset().union(*(templates.roots(value) for value in self._templated()))
        return bool(found & {"input", "instance"})


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
    # `concurrency: {key, limit}`: running instances per key value (`admission.py`)
    key_limit: KeyLimit | None = None
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
        """The node with this id, or for a map's item `<map>[<index>]` the map's item body (its id is
        the item's); raises KeyError if there is none."""
        spec = self._by_id.get(node_id)
        if spec is not None:
            return spec
        found = item_of(node_id)
        if found is not None:
            owner = self._by_id.get(found[0])
            if owner is not None and owner.item is not None:
                return dataclasses.replace(owner.item, id=node_id)
        raise KeyError(node_id)

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


def item_id(map_node_id: str, index: int) -> str:
    """The node id of a map's item."""
    return f"{map_node_id}[{index}]"


def item_of(node_id: str) -> tuple[str, int] | None:
    """(map node id, index) of a map item's node id; None for any other node id."""
    match = _ITEM_ID.fullmatch(node_id)
    return None if match is None else (match.group(1), int(match.group(2)))


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
    if name is not None:
        _limit_names_fit(name, body.get("nodes"), nodes, report)
    key_limit, key_problems = limits.parse_key_limit(body.get("concurrency"))
    for where, message in key_problems:
        report.add(where, message)
    try:
        _canonical_json(body)
    except (TypeError, ValueError) as exc:
        report.add("definition", f"is not plain JSON: {exc}")
    if report or name is None:
        raise ValidationError(_INVALID, list(report))
    raw = copy.deepcopy(body)
    return WorkflowDefinition(
        name, version, description, timeout_ms, inputs, tuple(nodes), raw, key_limit=key_limit
    )


def _limit_names_fit(workflow: str, raw: Any, nodes: list[NodeSpec], report: _Report) -> None:
    """A node's own limits are named `node:<workflow>/<node>` (a map's items `.../<map>[]`): the name
    must fit the column it is kept in."""
    positions = [i for i, body in enumerate(raw) if isinstance(body, dict)] if isinstance(raw, list) else []
    for i, node in zip(positions, nodes, strict=False):
        items = (node.item, f"{node.id}[]", f"nodes[{i}].node")
        for spec, node_id, where in ((node, node.id, f"nodes[{i}]"), items):
            if spec is None or spec.limits is None:
                continue
            if len(limits.node_gate(workflow, node_id)) > limits.MAX_NAME_LENGTH:
                field = limits.CONCURRENCY if spec.limits.concurrency is not None else limits.RATE
                report.add(
                    f"{where}.{field}",
                    f"a node with limits needs its workflow's name and its id to be at most "
                    f"{limits.MAX_NAME_LENGTH - len(limits.node_gate('', '[]'))} characters together",
                )


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
    _report_shared_signals(nodes, report)
    return nodes


def _report_shared_signals(nodes: list[NodeSpec], report: _Report) -> None:
    """A signal names one wait node: which node a signal completes must not depend on timing."""
    first: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if node.signal is None:
            continue
        if node.signal in first:
            report.add(
                f"nodes[{i}].signal",
                f"signal {node.signal!r} is already waited for by nodes[{first[node.signal]}]",
            )
        else:
            first[node.signal] = i


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
        report.add(f"{where}.type", f"{kind!r} is not a node type; use one of {', '.join(NODE_TYPES)}")
    depends_on = _depends_on(body.get("dependsOn"), where, node_id, known, report)
    spec = _parse_body(
        body, where, node_id, kind if isinstance(kind, str) else "task", report, check_executors
    )
    spec = dataclasses.replace(spec, depends_on=depends_on)
    if kind == "map":
        if len(node_id) > _MAX_MAP_ID_LENGTH:
            report.add(f"{where}.id", f"a map node's id must be at most {_MAX_MAP_ID_LENGTH} characters")
        spec = _map(body, where, spec, report, check_executors)
    elif kind == "wait":
        spec = _wait(body, where, spec, report)
    elif kind == "sleep":
        spec = _sleep(body, where, spec, report)
    for at, value in [(f"{where}.config", spec.config), (f"{where}.when", spec.when)]:
        _no_item_roots(value, at, report)
    return spec


def _parse_body(
    body: dict[str, Any], where: str, node_id: str, kind: str, report: _Report, check_executors: bool
) -> NodeSpec:
    """The fields every node body has (a map's item body too): config, executor or sub-workflow,
    `when`, retries, timeout, queue."""
    config = body.get("config")
    if config is None:
        config = {}
    elif not isinstance(config, dict):
        report.add(f"{where}.config", "must be an object", "TYPE_MISMATCH")
        config = {}
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
    own_limits, limit_problems = limits.parse_node_limits(body)
    for key, message in limit_problems:
        report.add(f"{where}.{key}", message)
    return NodeSpec(
        id=node_id,
        name=_optional_str(body, "name", f"{where}.name", report) or node_id,
        type=kind,
        executor=executor,
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
        limits=own_limits,
    )


def _map(
    body: dict[str, Any], where: str, spec: NodeSpec, report: _Report, check_executors: bool
) -> NodeSpec:
    over = body.get("over")
    if over is None:
        report.add(
            f"{where}.over", "a map needs over: a template such as ${nodes.x.output.items}", "REQUIRED_FIELD"
        )
    elif not isinstance(over, str):
        report.add(
            f"{where}.over", "must be a template string such as ${nodes.x.output.items}", "TYPE_MISMATCH"
        )
        over = None
    else:
        try:
            whole = templates.parse(over).is_whole_value
        except errors.TemplateError as exc:
            report.add(f"{where}.over", exc.message, "TEMPLATE_ERROR")
            whole = True
        if not whole:
            report.add(f"{where}.over", "must be exactly one template, such as ${nodes.x.output.items}")
        _no_item_roots(over, f"{where}.over", report)
    item_body = body.get("node")
    item: NodeSpec | None = None
    if item_body is None:
        report.add(
            f"{where}.node", "a map needs node: the task or subworkflow run once per item", "REQUIRED_FIELD"
        )
    elif not isinstance(item_body, dict):
        report.add(f"{where}.node", "must be an object: a task or subworkflow node body", "TYPE_MISMATCH")
    else:
        at = f"{where}.node"
        kind = "task" if item_body.get("type") is None else item_body["type"]
        if kind not in ITEM_TYPES:
            report.add(f"{at}.type", f"{kind!r} cannot run per item; use task or subworkflow")
            kind = "task"
        for key in ("id", "dependsOn"):
            if key in item_body:
                report.add(f"{at}.{key}", "an item has the map's id and dependencies; remove it")
        item = _parse_body(item_body, at, spec.id, kind, report, check_executors)
    max_concurrency = _optional_int(
        body, "maxConcurrency", f"{where}.maxConcurrency", report, minimum=1, maximum=MAX_MAP_ITEMS
    )
    on_failure = body.get("onItemFailure", "fail")
    if on_failure not in ON_ITEM_FAILURE:
        report.add(f"{where}.onItemFailure", f"must be one of {', '.join(ON_ITEM_FAILURE)}")
        on_failure = "fail"
    return dataclasses.replace(
        spec, over=over, item=item, max_concurrency=max_concurrency, on_item_failure=on_failure
    )


def _wait(body: dict[str, Any], where: str, spec: NodeSpec, report: _Report) -> NodeSpec:
    signal = _required_str(
        body, "signal", f"{where}.signal", report, _SIGNAL, "a signal name of letters, digits, '_.:-'"
    )
    on_timeout = body.get("onTimeout")
    if on_timeout is not None and (not isinstance(on_timeout, dict) or "output" not in on_timeout):
        report.add(f"{where}.onTimeout", 'must be an object {"output": ...}', "TYPE_MISMATCH")
        on_timeout = None
    return dataclasses.replace(spec, signal=signal, on_timeout=copy.deepcopy(on_timeout))


def _sleep(body: dict[str, Any], where: str, spec: NodeSpec, report: _Report) -> NodeSpec:
    duration = _optional_int(
        body, "duration", f"{where}.duration", report, minimum=0, maximum=MAX_DURATION_MS
    )
    until = _optional_str(body, "until", f"{where}.until", report)
    if body.get("duration") is None and body.get("until") is None:
        report.add(f"{where}.duration", "a sleep needs duration (ms) or until (ISO 8601)", "REQUIRED_FIELD")
    elif body.get("duration") is not None and body.get("until") is not None:
        report.add(f"{where}.until", "give duration or until, not both")
    if until is not None:
        try:
            template = templates.parse(until)
        except errors.TemplateError as exc:
            report.add(f"{where}.until", exc.message, "TEMPLATE_ERROR")
        else:
            if not template.is_template and parse_instant(until) is None:
                report.add(f"{where}.until", f"{until!r} is not an ISO 8601 date and time")
        _no_item_roots(until, f"{where}.until", report)
    return dataclasses.replace(spec, duration_ms=duration, until=until)


def parse_instant(text: Any) -> datetime | None:
    """An ISO 8601 date and time as naive UTC (one without an offset is taken as UTC); None if `text`
    is not one."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is not None:
        try:
            value = value.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # an offset that carries it past year 1 or 9999
            return None
    return value


def _no_item_roots(value: Any, where: str, report: _Report) -> None:
    for location, text in templates.strings_in(value, where):
        with contextlib.suppress(errors.TemplateError):
            used = templates.parse(text).roots & templates.ITEM_ROOTS
            if used:
                names = " and ".join(sorted(used))
                report.add(location, f"{names} exist only in the node body of a map", "TEMPLATE_ERROR")


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
    reads = [(node, list(_refs(node, f"nodes[{i}]"))) for i, node in enumerate(nodes)]
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


def _refs(node: NodeSpec, where: str) -> Iterator[tuple[str, str]]:
    located: list[tuple[Any, str]] = [
        (node.config, f"{where}.config"),
        (node.when, f"{where}.when"),
        (node.over, f"{where}.over"),
        (node.until, f"{where}.until"),
    ]
    if node.item is not None:
        located += [(node.item.config, f"{where}.node.config"), (node.item.when, f"{where}.node.when")]
    for value, at in located:
        for location, text in templates.strings_in(value, at):
            for ref in sorted(templates.node_refs(text)):
                yield location, ref
