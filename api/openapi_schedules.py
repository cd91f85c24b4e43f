"""The schedules' part of the OpenAPI document (`api/openapi.py` merges it in): their paths, schemas
and operation ids. What JSON Schema cannot say (that the cron expression parses, the zone exists, the
workflow exists and takes the input) is a 422 naming the field, as docs/api.md lists."""

from __future__ import annotations

from typing import Any

from api.openapi_parts import query as _query
from api.query import DEFAULT_SCHEDULE_PAGE, MAX_SCHEDULE_PAGE
from orchestrator.instances import PRIORITIES
from orchestrator.schedule_specs import CATCHUPS, FIRE_TIME_TAG, OVERLAPS, SCHEDULE_TAG

Schema = dict[str, Any]

NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_TAG_KEY_PATTERN = "^[A-Za-z0-9_./-]{1,128}$"
_STR = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _optional(schema: Schema) -> Schema:
    """`schema`, or null: null resets the field to its default."""
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    return {**schema, "type": [schema["type"], "null"]}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, ok: dict[str, Schema], *errors: str, **extra: Any) -> Schema:
    responses = {code: {"$ref": f"#/components/responses/E{code}"} for code in ("401", *errors)}
    return {"summary": summary, "responses": {**ok, **responses}, **extra}


def _body(schema: Schema, required: bool = True) -> Schema:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


_FIELDS: dict[str, Schema] = {
    "name": {"type": "string", "pattern": NAME_PATTERN},
    "workflow": {"type": "string", "minLength": 1, "maxLength": 128},
    "cron": {
        "type": "string",
        "maxLength": 255,
        "description": "5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first",
    },
    "version": _optional(
        {"type": "string", "minLength": 1, "maxLength": 64, "description": "a version; none: the latest"}
    ),
    "timezone": _optional(
        {
            "type": "string",
            "maxLength": 64,
            "default": "UTC",
            "description": "an IANA zone, e.g. Europe/Paris",
        }
    ),
    "input": _optional({"type": "object", "default": {}}),
    "priority": _optional({"enum": list(PRIORITIES), "default": "normal"}),
    "tags": _optional(
        {
            "type": "object",
            "description": f"copied to every fired instance, beside `{SCHEDULE_TAG}` and `{FIRE_TIME_TAG}`",
            "propertyNames": {"pattern": _TAG_KEY_PATTERN, "not": {"enum": [SCHEDULE_TAG, FIRE_TIME_TAG]}},
            "additionalProperties": {"type": "string", "maxLength": 1024},
        }
    ),
    "overlap": _optional({"enum": list(OVERLAPS), "default": "skip"}),
    "catchup": _optional({"enum": list(CATCHUPS), "default": "none"}),
    "paused": _optional({"type": "boolean", "default": False}),
}

SCHEMAS: dict[str, Schema] = {
    "ScheduleRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "workflow", "cron"],
        "properties": _FIELDS,
        "examples": [
            {
                "name": "nightly-onboarding",
                "workflow": "user-onboarding",
                "cron": "0 3 * * *",
                "timezone": "Europe/Paris",
                "input": {
                    "email": "ann@example.com",
                    "name": "Ann",
                    "department": "R&D",
                    "permissions": ["read"],
                },
                "overlap": "skip",
                "catchup": "last",
            }
        ],
    },
    "SchedulePatch": {
        "type": "object",
        "description": "the fields to change; `name` may only repeat the schedule's own",
        "additionalProperties": False,
        "properties": _FIELDS,
    },
    "Schedule": {
        "type": "object",
        "required": ["name", "workflow", "cron", "timezone", "overlap", "catchup", "paused", "nextFireAt"],
        "properties": {
            **{name: _STR for name in ("name", "workflow", "cron", "timezone")},
            "version": {"type": ["string", "null"]},
            "input": {"type": "object"},
            "priority": {"enum": list(PRIORITIES)},
            "tags": {"type": "object", "additionalProperties": _STR},
            "overlap": {"enum": list(OVERLAPS)},
            "catchup": {"enum": list(CATCHUPS)},
            "paused": {"type": "boolean"},
            "nextFireAt": {**_TIME, "type": ["string", "null"], "description": "null while paused"},
            "lastFireAt": {**_TIME, "type": ["string", "null"]},
            "lastInstanceId": {"type": ["string", "null"]},
            "skippedFires": {"type": "integer", "minimum": 0},
            "createdAt": _TIME,
            "updatedAt": _TIME,
        },
    },
}

_NAME = {"name": "name", "in": "path", "required": True, "schema": _STR}
_ONE = {"200": _json(_ref("Schedule"), "the schedule")}
_ACTION_BODY = _body({"type": "object", "additionalProperties": False, "properties": {}}, False)
_WRITE_ERRORS = ("400", "413", "415", "422")

PATHS: dict[str, Schema] = {
    "/api/v1/schedules": {
        "post": _op(
            "create a schedule: 201 with its next fire time; 409 when the name is taken",
            {"201": _json(_ref("Schedule"), "created")},
            "409",
            *_WRITE_ERRORS,
            requestBody=_body(_ref("ScheduleRequest")),
        ),
        "get": _op(
            "a page of schedules, by name, with their next fire times",
            {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "schedules": {"type": "array", "items": _ref("Schedule")},
                            "nextAfter": {
                                "type": ["string", "null"],
                                "description": "`after` for the next page; null on the last",
                            },
                        },
                    },
                    "schedules",
                )
            },
            "422",
            parameters=[
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_SCHEDULE_PAGE},
                    f"page size (default {DEFAULT_SCHEDULE_PAGE}, at most {MAX_SCHEDULE_PAGE})",
                ),
                _query("after", {"type": "string", "maxLength": 255}, "schedules named after this name"),
            ],
        ),
    },
    "/api/v1/schedules/{name}": {
        "parameters": [_NAME],
        "get": _op("one schedule", _ONE, "404"),
        "patch": _op(
            "change a schedule; a new cron, zone or paused state computes the next fire time from now",
            _ONE,
            "404",
            "409",
            *_WRITE_ERRORS,
            requestBody=_body(_ref("SchedulePatch")),
        ),
        "delete": _op("delete a schedule (its instances stay): the schedule as it was", _ONE, "404"),
    },
    "/api/v1/schedules/{name}/pause": {
        "parameters": [_NAME],
        "post": _op(
            "pause: no fire time until resumed", _ONE, "404", *_WRITE_ERRORS, requestBody=_ACTION_BODY
        ),
    },
    "/api/v1/schedules/{name}/resume": {
        "parameters": [_NAME],
        "post": _op(
            "resume: the next fire time after now (times passed while paused are not made up)",
            _ONE,
            "404",
            *_WRITE_ERRORS,
            requestBody=_ACTION_BODY,
        ),
    },
    "/api/v1/schedules/{name}/trigger": {
        "parameters": [_NAME],
        "post": _op(
            "fire now (paused or not); 409 when a previous run is open and overlap is skip",
            {
                "201": _json(
                    {
                        "type": "object",
                        "required": ["instance", "schedule"],
                        "properties": {"instance": _ref("InstanceSummary"), "schedule": _ref("Schedule")},
                    },
                    "the instance started, and the schedule",
                )
            },
            "404",
            "409",
            *_WRITE_ERRORS,
            requestBody=_ACTION_BODY,
        ),
    },
}

OPERATION_IDS = {
    ("post", "/api/v1/schedules"): "createSchedule",
    ("get", "/api/v1/schedules"): "listSchedules",
    ("get", "/api/v1/schedules/{name}"): "getSchedule",
    ("patch", "/api/v1/schedules/{name}"): "changeSchedule",
    ("delete", "/api/v1/schedules/{name}"): "deleteSchedule",
    ("post", "/api/v1/schedules/{name}/pause"): "pauseSchedule",
    ("post", "/api/v1/schedules/{name}/resume"): "resumeSchedule",
    ("post", "/api/v1/schedules/{name}/trigger"): "triggerSchedule",
}
