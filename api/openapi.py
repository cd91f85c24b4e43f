"""`/api/v1/openapi.json`: the OpenAPI 3.1 document of every path, kept here by hand beside the code.

`tests/api/test_openapi.py` checks that it is a valid document and that every route of the app is in
it, so a new route without its entry fails the tests; `tests/api/test_schemathesis.py` checks that the
server accepts what it describes and refuses what it does not (known exceptions in docs/api.md).
A field that is optional also takes `null`, which means the same as leaving it out.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from api import openapi_limits, openapi_schedules
from api.instances import MAX_BATCH
from api.openapi_parts import query as _query
from api.query import DEFAULT_INSTANCE_PAGE, DEFAULT_LOG_PAGE, MAX_INSTANCE_PAGE, MAX_LOG_PAGE
from api.requests import ALIASES, MAX_TIMEOUT_MS, SCHEDULE_KEY_PREFIX
from orchestrator import waiting
from orchestrator.definitions import MAX_DURATION_MS, MAX_MAP_ITEMS, NODE_TYPES
from orchestrator.instances import PRIORITIES
from orchestrator.logs import LEVELS
from orchestrator.states import InstanceStatus, NodeStatus
from orchestrator.views import MAX_ITEMS_PAGE

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _optional(schema: Schema) -> Schema:
    """`schema`, or null: an optional request field given as null counts as left out."""
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    return {**schema, "type": [schema["type"], "null"]}


def _given(field: str) -> Schema:
    """Matches a body that gives `field` a value (not null)."""
    return {"required": [field], "properties": {field: {"not": {"type": "null"}}}}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": "malformed JSON body, or none where one is required",
    "401": "missing or wrong bearer token (when ORCH_API_TOKENS is set)",
    "404": "no such resource",
    "405": "method not allowed on this path",
    "409": "conflict with the current state",
    "413": "body over ORCH_MAX_BODY_BYTES",
    "415": "a body not sent as Content-Type: application/json (UTF-8)",
    "422": "the request is well-formed but invalid",
}


def _errors(*codes: str) -> dict[str, Schema]:
    return {code: {"$ref": f"#/components/responses/E{code}"} for code in ("401", *codes)}


def _op(summary: str, ok: dict[str, Schema], *errors: str, **extra: Any) -> Schema:
    return {"summary": summary, "responses": {**ok, **_errors(*errors)}, **extra}


def _body(schema: Schema, required: bool = True) -> Schema:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _action_body(properties: dict[str, Schema]) -> Schema:
    """A lifecycle action's optional body: an object with only these fields (none: `{}`)."""
    return {"type": "object", "additionalProperties": False, "properties": properties}


def _list_query(name: str, item: Schema, description: str) -> Schema:
    """A repeatable query parameter (`?tag=a:1&tag=b:2`)."""
    schema = {"type": "array", "items": item}
    return {**_query(name, schema, description), "style": "form", "explode": True}


# The server's own rules (orchestrator/definitions.py, orchestrator/semver.py, api/requests.py), in the
# ECMA-262 dialect JSON Schema uses; tests/api/test_openapi.py checks that both agree.
NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_SEMVER_NUMBER = "(?:0|[1-9][0-9]*)"
_SEMVER_PRE_ID = "(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
VERSION_PATTERN = (
    f"^{_SEMVER_NUMBER}(?:\\.{_SEMVER_NUMBER}(?:\\.{_SEMVER_NUMBER})?)?"
    f"(?:-{_SEMVER_PRE_ID}(?:\\.{_SEMVER_PRE_ID})*)?"
    "(?:\\+[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*)?$"
)
TAG_KEY_PATTERN = "^[A-Za-z0-9_./-]{1,128}$"
QUEUE_PATTERN = "^[A-Za-z0-9_.-]{1,64}$"
# `key:value`, or empty (no filter); the value may hold any character, colons too
TAG_FILTER_PATTERN = "^(?:[A-Za-z0-9_./-]{1,128}:[\\s\\S]{0,1024})?$"
_STATUS_NAMES = "|".join(s.value for s in InstanceStatus)
# one or more statuses, comma-separated, blanks around them ignored; empty is no filter
STATUS_FILTER_PATTERN = f"^\\s*(?:(?:{_STATUS_NAMES})?\\s*,\\s*)*(?:{_STATUS_NAMES})?\\s*$"
_MAX_ID = 2**63 - 1  # ids are BIGINT

_STR = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_TEXT = {"type": "string", "maxLength": 255}  # a name or id to filter by: no stored one is longer
_ID = {"type": "integer", "minimum": 0, "maximum": _MAX_ID}
_ANY: Schema = {}
_INSTANCE_ID = {"name": "instance_id", "in": "path", "required": True, "schema": _STR}
_STATUS_OK = {"200": _json(_ref("Status"), "the instance's new status object")}
_ACTION_ERRORS = ("400", "404", "409", "413", "415", "422")
_CREATE_ERRORS = ("400", "413", "415", "422")

SCHEMAS: dict[str, Schema] = {
    "Problem": {
        "type": "object",
        "required": ["field", "message", "code"],
        "properties": {"field": _STR, "message": _STR, "code": _STR},
    },
    "ErrorBody": {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {"code": _STR, "message": _STR, "details": {"type": "array", "items": _ref("Problem")}},
    },
    "Error": {"type": "object", "required": ["error"], "properties": {"error": _ref("ErrorBody")}},
    "Definition": {
        "type": "object",
        "description": "a workflow definition in the seed's JSON shape (unknown keys are kept). The rules "
        "of `nodes` and `inputs` that cross fields (executors that exist, `dependsOn` and templates that "
        "name nodes of this definition, no cycles, input specs and defaults) are checked by the server "
        "and answered with 422 naming each field; see docs/api.md",
        "required": ["name", "nodes"],
        "properties": {
            "name": {"type": "string", "pattern": NAME_PATTERN},
            "version": _optional(
                {
                    "type": "string",
                    "pattern": VERSION_PATTERN,
                    "maxLength": 64,
                    "description": "a semantic version (`1`, `1.2`, `1.2.3-rc.1+build`); default 1.0.0",
                }
            ),
            "description": _optional({"type": "string", "maxLength": 16_000}),
            "timeout": _optional(
                {"type": "integer", "minimum": 1, "maximum": MAX_DURATION_MS, "description": "milliseconds"}
            ),
            "inputs": _optional(
                {
                    "type": "object",
                    "description": "input name -> spec (`type`, `required`, `default`, `enum`, `pattern`, "
                    "`min`, `max`, `minLength`, `maxLength`, `description`)",
                    "additionalProperties": {"type": "object"},
                }
            ),
            "nodes": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "description": "`id`, `type` (task, subworkflow, map, wait or sleep), `executor`, "
                    "`dependsOn`, `config`, `retries`, `retryDelay`, `timeout`, `queue`, `when`, `name`; "
                    "a map: `over` (one template naming a list), `node` (the task or subworkflow body run "
                    "once per item, `${item}` and `${index}` in its config), `maxConcurrency`, "
                    "`onItemFailure` (fail or continue); a wait: `signal`, `timeout` (ms), "
                    "`onTimeout` ({output}); a sleep: `duration` (ms) or `until` (ISO 8601 or a template)",
                },
            },
        },
    },
    "StoredDefinition": {
        "allOf": [
            _ref("Definition"),
            {"type": "object", "properties": {"id": {"type": "integer"}, "createdAt": _TIME}},
        ]
    },
    "DefinitionSummary": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": _STR,
            "version": _STR,
            "description": _nullable(_STR),
            "createdAt": _TIME,
        },
    },
    "InstanceRequest": {
        "type": "object",
        "description": "`workflowName`, `workflowVersion` and `inputData` are the seed's names of "
        "`workflow`, `version` and `input`: each field under either name, never under both (422)",
        "additionalProperties": False,
        "properties": {
            **{
                name: _optional({"type": "string", "minLength": 1, "description": "the workflow's name"})
                for name in ("workflow", "workflowName")
            },
            **{
                name: _optional(
                    {"type": "string", "minLength": 1, "description": "a version or `latest` (the default)"}
                )
                for name in ("version", "workflowVersion")
            },
            **{name: _optional({"type": "object"}) for name in ("input", "inputData")},
            "priority": _optional({"enum": list(PRIORITIES)}),
            "externalId": _optional(
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    # the keys of the schedules' fire times (`schedule:<name>@<time>`) are theirs only
                    "not": {"type": "string", "pattern": f"^{SCHEDULE_KEY_PREFIX}"},
                }
            ),
            "tags": _optional(
                {
                    "type": "object",
                    "propertyNames": {"pattern": TAG_KEY_PATTERN},
                    "additionalProperties": {"type": "string", "maxLength": 1024},
                }
            ),
            "timeout": _optional(
                {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_MS, "description": "milliseconds"}
            ),
            "maxRetries": _optional({"type": "integer", "minimum": 0, "maximum": 100}),
            "createdBy": _optional({"type": "string", "maxLength": 255}),
            "parentInstanceId": _optional(_STR),
            "callbackUrl": _optional({"type": "string", "pattern": "^https?://", "maxLength": 2048}),
            "queue": _optional({"type": "string", "pattern": QUEUE_PATTERN}),
            "start": _optional({"type": "boolean", "default": True}),
            "startAt": _optional(
                {
                    **_TIME,
                    "description": "stay pending until this time (UTC without an offset; a past time "
                    "is now); with `start: false` only recorded",
                }
            ),
        },
        "allOf": [
            {"anyOf": [_given("workflow"), _given("workflowName")]},
            *({"not": {"allOf": [_given(field), _given(alias)]}} for alias, field in ALIASES.items()),
        ],
        "examples": [
            {
                "workflowName": "user-onboarding",
                "workflowVersion": "1.0.0",
                "inputData": {
                    "email": "ann@example.com",
                    "name": "Ann",
                    "department": "R&D",
                    "permissions": ["read"],
                },
            }
        ],
    },
    "InstanceSummary": {
        "type": "object",
        "required": ["id", "workflow", "status"],
        "properties": {
            "id": _STR,
            "workflow": _STR,
            "version": _STR,
            "status": {"enum": [s.value for s in InstanceStatus]},
            "priority": _STR,
            "tags": {"type": "object", "additionalProperties": _STR},
            "externalId": _nullable(_STR),
            "parentInstanceId": _nullable(_STR),
            "createdBy": _nullable(_STR),
            "createdAt": _TIME,
            "startAt": _nullable(_TIME),
            "startedAt": _nullable(_TIME),
            "updatedAt": _TIME,
            "finishedAt": _nullable(_TIME),
            "error": _nullable({"type": "object"}),
        },
    },
    "Instance": {
        "allOf": [
            _ref("InstanceSummary"),
            {
                "type": "object",
                "properties": {
                    "input": {"type": "object"},
                    "context": {"type": "object", "description": "node id -> {output} of completed nodes"},
                    "output": _ANY,
                    "timeout": _nullable({"type": "integer"}),
                    "maxRetries": _nullable({"type": "integer"}),
                    "parentNodeId": _nullable(_STR),
                    "callbackUrl": _nullable(_STR),
                    "queue": _nullable(_STR),
                    "workers": {"type": "array", "items": _STR},
                    "waitingFor": _nullable(_ref("LimitWait")),
                },
            },
        ]
    },
    "InstanceList": {
        "type": "object",
        "required": ["instances", "nextCursor"],
        "properties": {
            "instances": {"type": "array", "items": _ref("InstanceSummary")},
            "nextCursor": _nullable({"type": "string", "description": "pass as `cursor` for the next page"}),
        },
    },
    "BatchRequest": {
        "type": "object",
        "required": ["instances"],
        "additionalProperties": False,
        "properties": {
            "instances": {
                "type": "array",
                "description": "InstanceRequest items; an item that is not a valid one gets its own error "
                "result (so any JSON value is accepted as an item)",
                "items": {},
                "minItems": 1,
                "maxItems": MAX_BATCH,
            }
        },
    },
    "BatchResult": {
        "type": "object",
        "required": ["index", "status"],
        "properties": {
            "index": {"type": "integer"},
            "status": {"type": "integer", "description": "the HTTP status this item alone would have had"},
            "instance": _ref("InstanceSummary"),
            "error": _ref("ErrorBody"),
        },
    },
    "Status": {
        "type": "object",
        "properties": {
            "id": _STR,
            "status": {"enum": [s.value for s in InstanceStatus]},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "currentNode": _nullable(_STR),
            **{
                name: {"type": "array", "items": _STR}
                for name in (
                    "currentNodes",
                    "completedNodes",
                    "failedNodes",
                    "skippedNodes",
                    "queuedNodes",
                    "waitingNodes",
                )
            },
            "waitingFor": {
                "type": "object",
                "additionalProperties": _ref("WaitingFor"),
                "description": "node id -> why that queued node is not running yet: `worker` (its message "
                "is sent; no worker of its queue has a free slot) or `retryDelay` (a retry not yet due); "
                "or what that `waiting` node waits for",
            },
            "totalNodes": {"type": "integer"},
            "totalItems": {
                "type": "integer",
                "description": "the items its map nodes have made so far (not among `totalNodes`)",
            },
            "finishedItems": {
                "type": "integer",
                "description": "of those, the items that reached an outcome of their own, as `progress`",
            },
            "startedAt": _nullable(_TIME),
            "updatedAt": _TIME,
            "finishedAt": _nullable(_TIME),
            "executionTimeMs": _nullable({"type": "integer"}),
            "error": _nullable({"type": "object"}),
        },
    },
    "Node": {
        "type": "object",
        "properties": {
            "nodeId": _STR,
            "type": {"enum": list(NODE_TYPES)},
            "executor": _nullable(_STR),
            "queue": _STR,
            "status": {"enum": [s.value for s in NodeStatus]},
            "attempt": {"type": "integer"},
            "failures": {"type": "integer"},
            "workerId": _nullable(_STR),
            **{name: _nullable(_TIME) for name in ("queuedAt", "startedAt", "heartbeatAt", "finishedAt")},
            "output": _ANY,
            "error": _nullable({"type": "object"}),
            "skipReason": _nullable({"enum": ["upstream failed", "instance failed", "condition false"]}),
            "waitingFor": _nullable(_ref("WaitingFor")),
            "lastCheckpoint": _ANY,
            "items": {
                "type": "object",
                "description": "a map node's items: how many, how many ended, and how many per status",
                "properties": {
                    "total": {"type": "integer"},
                    "done": {"type": "integer"},
                    "byStatus": {"type": "object", "additionalProperties": {"type": "integer"}},
                },
            },
        },
    },
    "MapItem": {
        "type": "object",
        "properties": {
            "index": {"type": "integer"},
            "nodeId": _STR,
            "status": {"enum": [s.value for s in NodeStatus]},
            "attempt": {"type": "integer"},
            "output": _ANY,
            "error": _nullable({"type": "object"}),
            "startedAt": _nullable(_TIME),
            "finishedAt": _nullable(_TIME),
        },
    },
    "WaitingFor": {
        "description": "a queued node: `worker` or `retryDelay`, or the limit it waits for; a waiting "
        "wait node: its signal and timeout (`until`, null: none); a waiting sleep node: when it wakes",
        "anyOf": [
            {"enum": list(waiting.REASONS)},
            {
                "type": "object",
                "required": ["until"],
                "properties": {"signal": _STR, "until": _nullable(_TIME)},
            },
            _ref("LimitWait"),
        ],
    },
    "LimitWait": {
        "description": "held back by a limit (GET /api/v1/limits): a concurrency slot (the node's message "
        "is not sent, a pending instance is not started) or a rate token (`until`: when it starts)",
        "type": "object",
        "required": ["limit", "kind"],
        "properties": {
            "limit": {"type": "string", "examples": ["executor:crm.push", "node:etl/load", "key:etl:c-42"]},
            "kind": {"enum": ["concurrency", "rate"]},
            "until": _TIME,
        },
    },
    "SignalDelivery": {
        "type": "object",
        "required": ["instanceId", "signal", "delivered", "nodeId"],
        "properties": {
            "instanceId": _STR,
            "signal": _STR,
            "delivered": {
                "type": "boolean",
                "description": "true: the waiting node completed with the body as its output; false: "
                "the signal is stored until the node is reached",
            },
            "nodeId": {"type": "string", "description": "the wait node that waits for this signal"},
        },
    },
    "LogEntry": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "timestamp": _TIME,
            "level": {"enum": list(LEVELS)},
            "nodeId": _nullable(_STR),
            "message": _STR,
            "details": _ANY,
            "executor": _nullable(_STR),
            "durationMs": _nullable({"type": "number"}),
            "workerId": _nullable(_STR),
            "attempt": _nullable({"type": "integer"}),
        },
    },
    "Worker": {
        "type": "object",
        "properties": {
            "id": _STR,
            "hostname": _STR,
            "pid": _nullable({"type": "integer"}),
            "queues": {"type": "array", "items": _STR},
            "executors": {"type": "array", "items": _STR},
            "concurrency": _nullable({"type": "integer"}),
            "status": {"enum": ["active", "shutting_down", "gone"]},
            "startedAt": _TIME,
            "lastHeartbeat": _TIME,
            "alive": {"type": "boolean"},
            "runningNodes": {
                "type": "array",
                "items": {"type": "object", "properties": {"instanceId": _STR, "nodeId": _STR}},
            },
        },
    },
    "ServerSentEvent": {
        "type": "object",
        "description": "one event of the stream (OpenAPI 3.1 reads the schema of an event stream per event): "
        "`node` (a node's state), `log` (a log line, whose id is the event's id), `status` (the status "
        "object), `end` (`{status}`, last); the stream's first field sets the reconnection delay",
        "properties": {
            "event": {"enum": ["node", "log", "status", "end"]},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"type": "object"},
            },
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "retry": {"type": "integer", "minimum": 0},
        },
    },
    "Health": {
        "type": "object",
        "properties": {
            "status": {"enum": ["ok", "unavailable"]},
            "checks": {"type": "object", "additionalProperties": _STR},
        },
    },
}

_LIFECYCLE = {
    "start": "start an instance created with `start: false` (pending -> running)",
    "pause": "pause a running instance: nothing new is enqueued",
    "resume": "resume a paused instance",
}

PATHS: dict[str, Schema] = {
    "/api/v1/definitions": {
        "post": _op(
            "create a definition: 201 new, 200 identical exists, 409 differs, 422 invalid",
            {
                "201": _json(_ref("StoredDefinition"), "created"),
                "200": _json(_ref("StoredDefinition"), "an identical definition exists"),
            },
            "409",
            *_CREATE_ERRORS,
            requestBody=_body(_ref("Definition")),
        ),
        "get": _op(
            "every stored (name, version)",
            {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"definitions": {"type": "array", "items": _ref("DefinitionSummary")}},
                    },
                    "definitions, newest version first within a name",
                )
            },
        ),
    },
    "/api/v1/definitions/{name}": {
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": _STR}],
        "get": _op(
            "the highest version of a workflow",
            {"200": _json(_ref("StoredDefinition"), "the definition")},
            "404",
        ),
    },
    "/api/v1/definitions/{name}/{version}": {
        "parameters": [
            {"name": "name", "in": "path", "required": True, "schema": _STR},
            {"name": "version", "in": "path", "required": True, "schema": _STR},
        ],
        "get": _op(
            "one version (or `latest`)", {"200": _json(_ref("StoredDefinition"), "the definition")}, "404"
        ),
    },
    "/api/v1/instances": {
        "post": _op(
            "create (and by default start) an instance; a repeated externalId returns the existing one",
            {
                "201": _json(_ref("InstanceSummary"), "created"),
                "200": _json(_ref("InstanceSummary"), "the instance with this externalId"),
            },
            "404",
            *_CREATE_ERRORS,
            requestBody=_body(_ref("InstanceRequest")),
        ),
        "get": _op(
            "instances, newest first, in keyset pages",
            {"200": _json(_ref("InstanceList"), "one page")},
            "422",
            parameters=[
                _list_query(
                    "status",
                    {"type": "string", "pattern": STATUS_FILTER_PATTERN},
                    "instance status; repeatable or comma-separated, any of them: "
                    + ", ".join(s.value for s in InstanceStatus),
                ),
                _query("workflow", _TEXT, "workflow name"),
                _list_query(
                    "tag",
                    {"type": "string", "pattern": TAG_FILTER_PATTERN},
                    "`key:value`; repeatable, all must match",
                ),
                _query("externalId", _TEXT, "the idempotency key"),
                _query(
                    "delayed",
                    {"type": "boolean"},
                    "true: pending instances whose startAt is to come; false: the others",
                ),
                _query(
                    "limit",
                    {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_INSTANCE_PAGE,
                        "default": DEFAULT_INSTANCE_PAGE,
                    },
                    "page size",
                ),
                _query(
                    "cursor",
                    {"type": "string", "maxLength": 512},
                    "`nextCursor` of the previous page, as it was (any other value is 422)",
                ),
            ],
        ),
    },
    "/api/v1/instances/batch": {
        "post": _op(
            "create many instances; each item has its own result and one bad item does not stop the others",
            {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"results": {"type": "array", "items": _ref("BatchResult")}},
                    },
                    "one result per item, in request order",
                )
            },
            *_CREATE_ERRORS,
            requestBody=_body(_ref("BatchRequest")),
        )
    },
    "/api/v1/instances/{instance_id}": {
        # `/instances/batch` is the batch create, which takes only POST
        "parameters": [{**_INSTANCE_ID, "schema": {"type": "string", "not": {"const": "batch"}}}],
        "get": _op("the instance", {"200": _json(_ref("Instance"), "the instance")}, "404", "405"),
    },
    "/api/v1/instances/{instance_id}/status": {
        "parameters": [_INSTANCE_ID],
        "get": _op("the status object", {"200": _json(_ref("Status"), "the status")}, "404"),
    },
    "/api/v1/instances/{instance_id}/nodes": {
        "parameters": [_INSTANCE_ID],
        "get": _op(
            "node executions",
            {
                "200": _json(
                    {"type": "object", "properties": {"nodes": {"type": "array", "items": _ref("Node")}}},
                    "every node",
                )
            },
            "404",
        ),
    },
    "/api/v1/instances/{instance_id}/nodes/{map_node_id}/items": {
        "parameters": [_INSTANCE_ID, {"name": "map_node_id", "in": "path", "required": True, "schema": _STR}],
        "get": _op(
            "a map node's items in index order, a page at a time",
            {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "items": {"type": "array", "items": _ref("MapItem")},
                            "next": _nullable({"type": "integer"}),
                        },
                    },
                    "a page of items, and the index to pass as `after` for the next one (null: no more)",
                )
            },
            "404",
            "422",
            parameters=[
                _query("status", {"enum": [s.value for s in NodeStatus]}, "only items in this status"),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_ITEMS_PAGE},
                    f"page size (default and at most {MAX_ITEMS_PAGE}: each item comes with its output)",
                ),
                _query(
                    "after",
                    {"type": "integer", "minimum": -1, "maximum": MAX_MAP_ITEMS},
                    "items after this index",
                ),
            ],
        ),
    },
    "/api/v1/instances/{instance_id}/logs": {
        "parameters": [_INSTANCE_ID],
        "get": _op(
            "the execution log, oldest first",
            {
                "200": _json(
                    {"type": "object", "properties": {"logs": {"type": "array", "items": _ref("LogEntry")}}},
                    "log lines",
                )
            },
            "404",
            "422",
            parameters=[
                _query("nodeId", _TEXT, "only this node's lines"),
                _query("level", {"enum": list(LEVELS)}, "this level and the more severe ones"),
                _query("since", _TIME, "at or after this time (ISO 8601; UTC without an offset)"),
                _query("until", _TIME, "at or before this time"),
                _query("afterId", _ID, "only lines with a larger id"),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_LOG_PAGE, "default": DEFAULT_LOG_PAGE},
                    "at most this many lines",
                ),
            ],
        ),
    },
    "/api/v1/instances/{instance_id}/events": {
        "parameters": [_INSTANCE_ID],
        "get": _op(
            "Server-Sent Events (`node`, `log`, `status`, then `end`) until the instance ends",
            {
                "200": {
                    "description": "an event stream; `data` of every event is one JSON object",
                    "content": {"text/event-stream": {"schema": _ref("ServerSentEvent")}},
                }
            },
            "404",
            "422",
            parameters=[
                _query("afterId", _ID, "resume the log after this line id"),
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "schema": _STR,
                    "description": "as `afterId` (sent by reconnecting EventSource clients)",
                },
            ],
        ),
    },
    **{
        f"/api/v1/instances/{{instance_id}}/{action}": {
            "parameters": [_INSTANCE_ID],
            "post": _op(summary, _STATUS_OK, *_ACTION_ERRORS, requestBody=_body(_action_body({}), False)),
        }
        for action, summary in _LIFECYCLE.items()
    },
    "/api/v1/instances/{instance_id}/cancel": {
        "parameters": [_INSTANCE_ID],
        "post": _op(
            "cancel an instance: queued nodes are dropped, running ones see should_stop",
            _STATUS_OK,
            *_ACTION_ERRORS,
            requestBody=_body(_action_body({"reason": _optional(_STR)}), False),
        ),
    },
    "/api/v1/instances/{instance_id}/retry": {
        "parameters": [_INSTANCE_ID],
        "post": _op(
            "rerun a failed instance's failed nodes (and with fromNode, that node and its downstream); "
            "a map node reruns only its items that did not complete, unless `all` is true",
            _STATUS_OK,
            *_ACTION_ERRORS,
            requestBody=_body(
                _action_body({"fromNode": _optional(_STR), "all": _optional({"type": "boolean"})}), False
            ),
        ),
    },
    "/api/v1/instances/{instance_id}/signals/{name}": {
        "parameters": [
            _INSTANCE_ID,
            {"name": "name", "in": "path", "required": True, "schema": _STR, "description": "the signal"},
        ],
        "post": _op(
            "send a signal (any JSON body; none: null) to the instance's wait node waiting for `name`: "
            "it completes the waiting node with the body as its output, or is stored until the node is "
            "reached. 404: no such instance, or no wait node of it waits for `name`; 409: the instance "
            "has ended, the node is done, or a signal `name` is already stored",
            {"202": _json(_ref("SignalDelivery"), "delivered, or stored until the node is reached")},
            *_ACTION_ERRORS,
            requestBody=_body(_ANY, False),
        ),
    },
    "/api/v1/workers": {
        "get": _op(
            "every worker seen",
            {
                "200": _json(
                    {"type": "object", "properties": {"workers": {"type": "array", "items": _ref("Worker")}}},
                    "workers, by id",
                )
            },
        )
    },
    "/api/v1/openapi.json": {
        "get": _op("this document", {"200": _json({"type": "object"}, "the OpenAPI document")}),
    },
    "/health": {
        "get": {
            "summary": "200 when MySQL and the broker answer, 503 naming what does not",
            "security": [],
            "responses": {
                "200": _json(_ref("Health"), "healthy"),
                "503": _json(_ref("Health"), "a dependency does not answer"),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus text: instances by state, node durations, queue wait, recoveries, retries",
            "security": [],
            "responses": {"200": {"description": "metrics", "content": {"text/plain": {"schema": _STR}}}},
        }
    },
}

_OPERATION_IDS = {
    ("post", "/api/v1/definitions"): "createDefinition",
    ("get", "/api/v1/definitions"): "listDefinitions",
    ("get", "/api/v1/definitions/{name}"): "getLatestDefinition",
    ("get", "/api/v1/definitions/{name}/{version}"): "getDefinition",
    ("post", "/api/v1/instances"): "createInstance",
    ("get", "/api/v1/instances"): "listInstances",
    ("post", "/api/v1/instances/batch"): "createInstances",
    ("get", "/api/v1/instances/{instance_id}"): "getInstance",
    ("get", "/api/v1/instances/{instance_id}/status"): "getInstanceStatus",
    ("get", "/api/v1/instances/{instance_id}/nodes"): "getInstanceNodes",
    ("get", "/api/v1/instances/{instance_id}/nodes/{map_node_id}/items"): "getMapNodeItems",
    ("get", "/api/v1/instances/{instance_id}/logs"): "getInstanceLogs",
    ("get", "/api/v1/instances/{instance_id}/events"): "streamInstanceEvents",
    **{
        ("post", f"/api/v1/instances/{{instance_id}}/{action}"): f"{action}Instance"
        for action in (*_LIFECYCLE, "cancel", "retry")
    },
    ("post", "/api/v1/instances/{instance_id}/signals/{name}"): "sendSignal",
    ("get", "/api/v1/workers"): "listWorkers",
    ("get", "/api/v1/openapi.json"): "getOpenApiDocument",
    ("get", "/health"): "getHealth",
    ("get", "/metrics"): "getMetrics",
}
PATHS.update(openapi_schedules.PATHS)
SCHEMAS.update(openapi_schedules.SCHEMAS)
_OPERATION_IDS.update(openapi_schedules.OPERATION_IDS)
PATHS.update(openapi_limits.PATHS)
SCHEMAS.update(openapi_limits.SCHEMAS)
_OPERATION_IDS.update(openapi_limits.OPERATION_IDS)
for (_method, _path), _operation_id in _OPERATION_IDS.items():
    PATHS[_path][_method]["operationId"] = _operation_id

# What a created (or found) instance's id leads to: the operations on that instance.
_INSTANCE_LINKS = {
    operation_id: {"operationId": operation_id, "parameters": {"instance_id": "$response.body#/id"}}
    for (method, path), operation_id in _OPERATION_IDS.items()
    if path.startswith("/api/v1/instances/{instance_id}")
}
for _status in ("200", "201"):
    PATHS["/api/v1/instances"]["post"]["responses"][_status]["links"] = _INSTANCE_LINKS

DOCUMENT: Schema = {
    "openapi": "3.1.0",
    "info": {
        "title": "Workflow orchestrator API",
        "version": "1.0.0",
        "description": "DAG workflows on Celery. Errors are always "
        '`{"error": {"code", "message", "details": [{"field", "message", "code"}]}}`. '
        "When ORCH_API_TOKENS is set, every /api/ path needs `Authorization: Bearer <token>`.",
    },
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "responses": {f"E{code}": _json(_ref("Error"), description) for code, description in _ERRORS.items()},
    },
    "security": [{"bearer": []}],
}


@bp.get("/openapi.json")
def document() -> Response:
    return jsonify(DOCUMENT)
