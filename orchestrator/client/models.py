"""Typed, frozen views of the API's JSON answers (docs/api.md, api/openapi.py name every field).

Each is built by `from_json`, which reads the fields it knows (camelCase in the JSON, snake_case
here), tolerates missing ones, and ignores the ones it does not know: a newer server that adds a
field does not break an older client. The whole answer stays in `raw` for anything not modelled.
Times are timezone-aware `datetime`s (UTC).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from orchestrator.client.errors import ApiError

FINISHED = ("completed", "failed", "cancelled")
T = TypeVar("T")


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware datetime (UTC when it has no offset); None for null or garbage."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


def _time() -> Any:
    return field(default=None, metadata={"convert": parse_time})


def _names() -> Any:
    return field(default=(), metadata={"convert": _strings})


def _raw() -> Any:
    return field(default_factory=dict, repr=False, compare=False, metadata={"raw": True})


def _build(cls: type[T], data: Any) -> T:
    """An instance of the dataclass `cls` from a JSON object: known keys only, converted."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        if spec.metadata.get("raw"):
            values[spec.name] = data
            continue
        key = spec.metadata.get("json", _camel(spec.name))
        if key not in data:
            continue
        convert = spec.metadata.get("convert")
        values[spec.name] = convert(data[key]) if convert else data[key]
    return cls(**values)


@dataclass(frozen=True)
class ErrorInfo:
    """The `error` of an instance or a node: `code`, `message`, and the node it names, if any."""

    code: str | None = None
    message: str | None = None
    node_id: str | None = None
    raw: dict[str, Any] = _raw()

    @classmethod
    def from_json(cls, data: Any) -> ErrorInfo | None:
        return _build(cls, data) if isinstance(data, dict) else None


def _error() -> Any:
    return field(default=None, metadata={"convert": ErrorInfo.from_json})


@dataclass(frozen=True)
class DefinitionSummary:
    """One stored (name, version), as listed."""

    name: str = ""
    version: str = ""
    id: int | None = None
    description: str | None = None
    created_at: datetime | None = _time()
    raw: dict[str, Any] = _raw()

    @classmethod
    def from_json(cls, data: Any) -> DefinitionSummary:
        return _build(cls, data)


@dataclass(frozen=True)
class Definition(DefinitionSummary):
    """A stored definition; `raw` is the whole document, as the API returned it."""

    timeout: int | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    nodes: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Any) -> Definition:
        return _build(cls, data)


@dataclass(frozen=True)
class InstanceSummary:
    """An instance as listed and as created."""

    id: str = ""
    workflow: str = ""
    version: str | None = None
    status: str = ""
    priority: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    external_id: str | None = None
    parent_instance_id: str | None = None
    created_by: str | None = None
    created_at: datetime | None = _time()
    start_at: datetime | None = _time()
    started_at: datetime | None = _time()
    updated_at: datetime | None = _time()
    finished_at: datetime | None = _time()
    error: ErrorInfo | None = _error()
    raw: dict[str, Any] = _raw()

    @classmethod
    def from_json(cls, data: Any) -> InstanceSummary:
        return _build(cls, data)


@dataclass(frozen=True)
class Instance(InstanceSummary):
    """One instance in full: its input, the outputs of its finished nodes (`context`), its output."""

    input: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    output: Any = None
    timeout: int | None = None
    max_retries: int | None = None
    parent_node_id: str | None = None
    callback_url: str | None = None
    queue: str | None = None
    workers: tuple[str, ...] = _names()

    @classmethod
    def from_json(cls, data: Any) -> Instance:
        return _build(cls, data)


@dataclass(frozen=True)
class Status:
    """The status object (`GET .../status`, lifecycle answers, `status` events)."""

    id: str = ""
    status: str = ""
    progress: int = 0
    current_nodes: tuple[str, ...] = _names()
    completed_nodes: tuple[str, ...] = _names()
    failed_nodes: tuple[str, ...] = _names()
    skipped_nodes: tuple[str, ...] = _names()
    queued_nodes: tuple[str, ...] = _names()
    waiting_nodes: tuple[str, ...] = _names()
    # a queued node: "worker" or "retryDelay"; a waiting one: {"signal"?, "until"}
    waiting_for: dict[str, Any] = field(default_factory=dict)
    total_nodes: int = 0
    total_items: int = 0  # the items of its maps (not among the nodes), `progress` counts them too
    finished_items: int = 0
    started_at: datetime | None = _time()
    updated_at: datetime | None = _time()
    finished_at: datetime | None = _time()
    execution_time_ms: int | None = None
    error: ErrorInfo | None = _error()
    raw: dict[str, Any] = _raw()

    @property
    def finished(self) -> bool:
        """The instance has ended (completed, failed or cancelled) and will not change by itself."""
        return self.status in FINISHED

    @classmethod
    def from_json(cls, data: Any) -> Status:
        return _build(cls, data)


@dataclass(frozen=True)
class NodeExecution:
    """One node of an instance (`GET .../nodes`)."""

    node_id: str = ""
    status: str = ""
    executor: str | None = None
    queue: str | None = None
    attempt: int = 0
    failures: int = 0
    worker_id: str | None = None
    queued_at: datetime | None = _time()
    started_at: datetime | None = _time()
    heartbeat_at: datetime | None = _time()
    finished_at: datetime | None = _time()
    output: Any = None
    error: ErrorInfo | None = _error()
    skip_reason: str | None = None
    waiting_for: str | dict[str, Any] | None = None
    last_checkpoint: Any = None
    raw: dict[str, Any] = _raw()

    @classmethod
    def from_json(cls, data: Any) -> NodeExecution:
        return _build(cls, data)


@dataclass(frozen=True)
class MapItem:
    """One item of a map node (`GET .../nodes/<map>/items`): its index, the id of its own node
    execution (`<map>[<index>]`), status, attempt, output and error."""

    index: int = 0
    node_id: str = ""
    status: str = ""
    attempt: int = 0
    output: Any = None
    error: ErrorInfo | None = _error()
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()
    raw: dict[str, Any] = _raw()

    @classmethod
    def from_json(cls, data: Any) -> MapItem:
        return _build(cls, data)


@dataclass(frozen=True)
class SignalDelivery:
    """What a signal did (`Client.signal`): `delivered`, the waiting node `node_id` completed with
    it; else it is stored until that node is reached."""

    instance_id: str = ""
    signal: str = ""
    delivered: bool = False
    node_id: str = ""
    raw: dict[str, Any] = _raw()

    @classmethod
    def from_json(cls, data: Any) -> SignalDelivery:
        return _build(cls, data)


@dataclass(frozen=True)
class LogLine:
    """One line of an instance's execution log."""

    id: int = 0
    timestamp: datetime | None = _time()
    level: str = "info"
    message: str = ""
    node_id: str | None = None
    details: Any = None
    executor: str | None = None
    duration_ms: float | None = None
    worker_id: str | None = None
    attempt: int | None = None
    raw: dict[str, Any] = _raw()

    @classmethod
    def from_json(cls, data: Any) -> LogLine:
        return _build(cls, data)


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event: `kind` `node`, `log`, `status` or `end` (others are passed through),
    `data` its JSON, `id` the SSE id (a log line's id)."""

    kind: str
    data: Any
    id: str | None = None

    @property
    def log(self) -> LogLine | None:
        return LogLine.from_json(self.data) if self.kind == "log" else None

    @property
    def node(self) -> NodeExecution | None:
        return NodeExecution.from_json(self.data) if self.kind == "node" else None

    @property
    def status(self) -> Status | None:
        return Status.from_json(self.data) if self.kind == "status" else None


@dataclass(frozen=True)
class BatchResult:
    """One item of a batch create: the instance, or the error that item alone would have had."""

    index: int
    http_status: int
    instance: InstanceSummary | None = None
    error: ApiError | None = None
