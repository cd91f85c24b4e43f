"""`/api/v1/openapi.json`: the OpenAPI 3.1 document of every path, kept here by hand beside the code.

`tests/api/test_openapi.py` checks that it is a valid document and that every route of the app is in
it, so a new route without its entry fails the tests.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from api.instances import MAX_BATCH
from api.query import DEFAULT_INSTANCE_PAGE, DEFAULT_LOG_PAGE, MAX_INSTANCE_PAGE, MAX_LOG_PAGE
from api.requests import MAX_TIMEOUT_MS
from orchestrator import waiting
from orchestrator.instances import PRIORITIES
from orchestrator.logs import LEVELS
from orchestrator.states import InstanceStatus, NodeStatus

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": "malformed JSON body",
    "401": "missing or wrong bearer token (when ORCH_API_TOKENS is set)",
    "404": "no such resource",
    "405": "method not allowed on this path",
    "409": "conflict with the current state",
    "413": "body over ORCH_MAX_BODY_BYTES",
    "422": "the request is well-formed but invalid",
}


def _errors(*codes: str) -> dict[str, Schema]:
    return {code: {"$ref": f"#/components/responses/E{code}"} for code in ("401", *codes)}


def _op(summary: str, ok: dict[str, Schema], *errors: str, **extra: Any) -> Schema:
    return {"summary": summary, "responses": {**ok, **_errors(*errors)}, **extra}


def _body(schema: Schema, required: bool = True) -> Schema:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_STR = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_ANY: Schema = {}
_INSTANCE_ID = {"name": "instance_id", "in": "path", "required": True, "schema": _STR}
_STATUS_OK = {"200": _json(_ref("Status"), "the instance's new status object")}
_ACTION_ERRORS = ("400", "404", "409", "413", "422")

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
        "description": "a workflow definition in the seed's JSON shape (unknown keys are kept)",
        "required": ["name", "nodes"],
        "properties": {
            "name": _STR,
            "version": _STR,
            "description": _STR,
            "timeout": {"type": "integer", "minimum": 1, "description": "milliseconds"},
            "inputs": {"type": "object", "additionalProperties": {"type": "object"}},
            "nodes": {"type": "array", "items": {"type": "object"}, "minItems": 1},
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
        "additionalProperties": False,
        "properties": {
            "workflow": {"type": "string", "description": "workflow name (or `workflowName`)"},
            "workflowName": _STR,
            "version": {"type": "string", "description": "a version or `latest` (the default)"},
            "input": {"type": "object"},
            "priority": {"enum": list(PRIORITIES)},
            "externalId": {"type": "string", "minLength": 1, "maxLength": 255},
            "tags": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 1024}},
            "timeout": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_MS},
            "maxRetries": {"type": "integer", "minimum": 0, "maximum": 100},
            "createdBy": {"type": "string", "maxLength": 255},
            "parentInstanceId": _STR,
            "callbackUrl": {"type": "string", "format": "uri", "maxLength": 2048},
            "queue": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
            "start": {"type": "boolean", "default": True},
        },
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
                "items": _ref("InstanceRequest"),
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
                for name in ("currentNodes", "completedNodes", "failedNodes", "skippedNodes", "queuedNodes")
            },
            "waitingFor": {
                "type": "object",
                "additionalProperties": {"enum": list(waiting.REASONS)},
                "description": "node id -> why that queued node is not running yet: `worker` (its message "
                "is sent; no worker of its queue has a free slot) or `retryDelay` (a retry not yet due)",
            },
            "totalNodes": {"type": "integer"},
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
            "waitingFor": _nullable({"enum": list(waiting.REASONS)}),
            "lastCheckpoint": _ANY,
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
            "400",
            "409",
            "413",
            "422",
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
            "400",
            "404",
            "413",
            "422",
            requestBody=_body(_ref("InstanceRequest")),
        ),
        "get": _op(
            "instances, newest first, in keyset pages",
            {"200": _json(_ref("InstanceList"), "one page")},
            "422",
            parameters=[
                _query(
                    "status",
                    _STR,
                    "instance status; repeatable or comma-separated: "
                    + ", ".join(s.value for s in InstanceStatus),
                ),
                _query("workflow", _STR, "workflow name"),
                _query("tag", _STR, "`key:value`; repeatable, all must match"),
                _query("externalId", _STR, "the idempotency key"),
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
                _query("cursor", _STR, "`nextCursor` of the previous page"),
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
            "400",
            "413",
            "422",
            requestBody=_body(_ref("BatchRequest")),
        )
    },
    "/api/v1/instances/{instance_id}": {
        "parameters": [_INSTANCE_ID],
        "get": _op("the instance", {"200": _json(_ref("Instance"), "the instance")}, "404"),
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
                _query("nodeId", _STR, "only this node's lines"),
                _query("level", {"enum": list(LEVELS)}, "this level and the more severe ones"),
                _query("since", _TIME, "at or after this time (ISO 8601; UTC without an offset)"),
                _query("until", _TIME, "at or before this time"),
                _query("afterId", {"type": "integer", "minimum": 0}, "only lines with a larger id"),
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
                    "content": {"text/event-stream": {"schema": _STR}},
                }
            },
            "404",
            "422",
            parameters=[
                _query("afterId", {"type": "integer", "minimum": 0}, "resume the log after this line id"),
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
            "post": _op(summary, _STATUS_OK, *_ACTION_ERRORS, requestBody=_body({"type": "object"}, False)),
        }
        for action, summary in _LIFECYCLE.items()
    },
    "/api/v1/instances/{instance_id}/cancel": {
        "parameters": [_INSTANCE_ID],
        "post": _op(
            "cancel an instance: queued nodes are dropped, running ones see should_stop",
            _STATUS_OK,
            *_ACTION_ERRORS,
            requestBody=_body(
                {"type": "object", "additionalProperties": False, "properties": {"reason": _STR}}, False
            ),
        ),
    },
    "/api/v1/instances/{instance_id}/retry": {
        "parameters": [_INSTANCE_ID],
        "post": _op(
            "rerun a failed instance's failed nodes (and with fromNode, that node and its downstream)",
            _STATUS_OK,
            *_ACTION_ERRORS,
            requestBody=_body(
                {"type": "object", "additionalProperties": False, "properties": {"fromNode": _STR}}, False
            ),
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
