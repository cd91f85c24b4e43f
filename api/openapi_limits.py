"""The limits' part of the OpenAPI document (`api/openapi.py` merges it in): the listing of every
limit, and an executor's limits set through the API. What JSON Schema cannot say (a rate's count of
at most 1,000,000 per period of at most a day) is a 422 naming the field, as docs/api.md lists."""

from __future__ import annotations

from typing import Any

from api.openapi_parts import query as _query
from api.query import DEFAULT_LIMIT_PAGE, LIMIT_KINDS, MAX_LIMIT_PAGE
from orchestrator.limit_overrides import NAME_PATTERN, RATE_PATTERN
from orchestrator.limits import MAX_LIMIT, MAX_RATE_TEXT

Schema = dict[str, Any]

_STR = {"type": "string"}
_SOURCES = ["api", "env", "code"]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, ok: dict[str, Schema], *errors: str, **extra: Any) -> Schema:
    responses = {code: {"$ref": f"#/components/responses/E{code}"} for code in ("401", *errors)}
    return {"summary": summary, "responses": {**ok, **responses}, **extra}


_CONCURRENCY = {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_LIMIT}
_RATE = {"type": ["string", "null"], "pattern": RATE_PATTERN, "maxLength": MAX_RATE_TEXT}

SCHEMAS: dict[str, Schema] = {
    "Limit": {
        "type": "object",
        "required": ["name", "kind", "limit", "inUse", "waiting", "source"],
        "properties": {
            "name": {
                "type": "string",
                "description": "`executor:<executor>`, `node:<workflow>/<node>` or `key:<workflow>:<value>`",
            },
            "kind": {"enum": list(LIMIT_KINDS)},
            "limit": {
                "anyOf": [{"type": "integer", "minimum": 1}, _STR],
                "description": "slots (concurrency), or a rate such as `100/m`",
            },
            "inUse": {
                "type": "integer",
                "description": "concurrency: nodes holding a slot (running, or sent and not yet claimed), "
                "or instances running or paused with the key; rate: tokens of its burst taken",
            },
            "waiting": {
                "type": "integer",
                "description": "nodes (or pending instances) waiting for a slot; rate: nodes waiting "
                "for their token",
            },
            "source": {
                "enum": [*_SOURCES, "definition"],
                "description": "where the value comes from: an executor's `api` (PUT /api/v1/limits/<name>), "
                "`env` (ORCH_LIMITS) or `code` (@executor); a node's or a key's `definition`",
            },
        },
    },
    "LimitOverride": {
        "type": "object",
        "description": "each field given overrides the executor's ORCH_LIMITS and code for that kind "
        "(null: no limit of that kind); a field left out keeps inheriting them",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "concurrency": {**_CONCURRENCY, "description": "slots across the cluster (4.0 counts as 4)"},
            "rate": {**_RATE, "description": "starts per period: `10/s`, `100/m`, `5/2s`, `1000/h`"},
        },
        "examples": [{"concurrency": 2, "rate": "10/s"}, {"concurrency": None}],
    },
    "ExecutorLimits": {
        "type": "object",
        "required": ["name", "executor", "concurrency", "rate", "sources", "override"],
        "properties": {
            "name": {"type": "string", "examples": ["executor:crm.push"]},
            "executor": _STR,
            "concurrency": {"type": ["integer", "null"], "description": "in effect; null: none"},
            "rate": {"type": ["string", "null"], "description": "in effect; null: none"},
            "sources": {
                "type": "object",
                "required": ["concurrency", "rate"],
                "properties": {
                    "concurrency": {"enum": [*_SOURCES, None]},
                    "rate": {"enum": [*_SOURCES, None]},
                },
                "description": "where each value comes from (null: nowhere sets one)",
            },
            "override": {
                "type": ["object", "null"],
                "description": "the fields set through the API; null: none",
                "properties": {"concurrency": _CONCURRENCY, "rate": {"type": ["string", "null"]}},
            },
        },
    },
}

_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": NAME_PATTERN},
    "description": "an executor's name (`crm.push`), or its limit's (`executor:crm.push`)",
}
_ONE = {"200": _json(_ref("ExecutorLimits"), "the executor's limits now")}

PATHS: dict[str, Schema] = {
    "/api/v1/limits": {
        "get": _op(
            "a page of concurrency and rate limits, by name then kind: declared on an executor (code, "
            "ORCH_LIMITS or the API), or used since (a node's, a concurrency key's with something "
            "running or waiting), its use, what waits, and where its value comes from",
            {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "limits": {"type": "array", "items": _ref("Limit")},
                            "nextCursor": {
                                "type": ["string", "null"],
                                "description": "`cursor` for the next page; null on the last",
                            },
                        },
                    },
                    "limits",
                )
            },
            "422",
            parameters=[
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT_PAGE},
                    f"page size (default {DEFAULT_LIMIT_PAGE}, at most {MAX_LIMIT_PAGE})",
                ),
                _query("cursor", {"type": "string", "maxLength": 512}, "a `nextCursor` of a previous page"),
            ],
        )
    },
    "/api/v1/limits/{name}": {
        "parameters": [_NAME],
        "put": _op(
            "set an executor's limits through the API (replacing any set before): a raised or removed "
            "limit lets waiting nodes go at once, a lowered one holds back the next admissions (409: "
            "limits are set through the API for 1,000 other executors, the most there can be)",
            _ONE,
            "400",
            "409",
            "413",
            "415",
            "422",
            requestBody={
                "required": True,
                "content": {"application/json": {"schema": _ref("LimitOverride")}},
            },
        ),
        "delete": _op(
            "drop the executor's limits set through the API (404: none): ORCH_LIMITS and the code "
            "apply again",
            _ONE,
            "404",
            "422",
        ),
    },
}

OPERATION_IDS = {
    ("get", "/api/v1/limits"): "listLimits",
    ("put", "/api/v1/limits/{name}"): "setExecutorLimits",
    ("delete", "/api/v1/limits/{name}"): "clearExecutorLimits",
}
