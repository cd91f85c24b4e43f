"""Reading request bodies into typed values, naming the field of every problem.

A body is read once, within `MAX_CONTENT_LENGTH` also when it is sent chunked, and parsed as strict
JSON: no `NaN`/`Infinity`, no lone surrogates, at most `MAX_JSON_DEPTH` levels deep. Anything the
store could not hold is refused here, as a 400 or 422, never found later as a 500.

A state-changing request that carries a body must declare it `application/json` (415 otherwise): a
web page can make a browser send a cross-site `text/plain` or form POST without asking, but not one
declared as JSON, so the API cannot be driven from another site even when it runs without tokens.
"""

from __future__ import annotations

import json
import math
import re
import sys
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from api.errors import BadRequest
from orchestrator.definitions import MAX_DURATION_MS
from orchestrator.errors import Problem, ValidationError
from orchestrator.instances import PRIORITIES, InstanceRequest
from orchestrator.schedule_firing import KEY_PREFIX as SCHEDULE_KEY_PREFIX

# MariaDB's JSON_VALID refuses documents nested 32 levels deep; stored values embed request values
# (an instance's input, a definition's config) a level or two down, so requests stay well below that.
MAX_JSON_DEPTH = 24
MAX_TIMEOUT_MS = MAX_DURATION_MS  # ten years: far beyond any workflow, far from overflow
_READ_CHUNK = 64 * 1024
# Tag keys end up in JSON path expressions (`$."key"`) when instances are filtered by tag.
TAG_KEY = re.compile(r"[A-Za-z0-9_./-]{1,128}", re.ASCII)
_QUEUE = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)
_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LEAP_SECOND = re.compile(r"(?<=T\d\d:\d\d):60(?=[.Z+-]|$)")
_EARLIEST = datetime(1970, 1, 1)
_LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999)


def init_app(app: Flask) -> None:
    app.before_request(_refuse_declared_oversize)
    app.before_request(_refuse_other_media_types)


def _refuse_declared_oversize() -> None:
    # also for paths that never read their body: a declared size over the limit is refused up front
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is not None and (request.content_length or 0) > limit:
        raise RequestEntityTooLarge(f"the request body is over the limit of {limit} bytes")


def _refuse_other_media_types() -> None:
    """415 for a state-changing `/api/` request whose body is not declared `application/json`.

    A request with no body at all needs no Content-Type (a lifecycle action's body is optional; where
    one is required the view answers 400). Any declared type other than JSON is refused even with an
    empty body: that is what an HTML form sends. Unknown paths and methods keep their 404 and 405.
    """
    if request.method not in _STATE_CHANGING or request.url_rule is None:
        return
    if not request.path.startswith("/api/"):
        return
    declared = request.headers.get("Content-Type")
    if declared is None:
        if request.content_length or request.headers.get("Transfer-Encoding"):
            raise UnsupportedMediaType("a request body must be sent as Content-Type: application/json")
        return
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if request.mimetype != "application/json" or charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(
            f"the request body must be Content-Type: application/json (UTF-8), not {declared[:100]!r}"
        )


def _read_body() -> bytes:
    """The raw body (read once per request). Raises RequestEntityTooLarge (413) past the limit.

    Werkzeug refuses a declared Content-Length over `MAX_CONTENT_LENGTH`, but silently cuts a chunked
    body at the limit; that one is read from the server's stream here, counting.
    """
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    stream = request.environ.get("wsgi.input")
    if request.content_length is not None or limit is None or stream is None:
        return request.get_data(cache=True)
    if not request.environ.get("wsgi.input_terminated"):
        return b""  # no length and no terminator: the stream cannot be read safely
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge(f"the request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf, which no JSON column accepts
        raise ValueError(f"number {text} is out of range")
    return value


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > sys.get_int_max_str_digits():  # Python's own message names its settings
        raise ValueError(f"an integer of {digits} digits is out of range")
    return int(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _malformed(message: str) -> BadRequest:
    return BadRequest("the request body is not valid JSON", [Problem("body", message, "BAD_REQUEST")])


def _check_value(data: Any) -> None:
    """Raise for values JSON allows but the store cannot hold: lone surrogates, deep nesting."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise _malformed("a string holds an unpaired surrogate (\\ud800-\\udfff)") from None
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValidationError(
                    "the request body is nested too deeply",
                    [Problem("body", f"nests more than {MAX_JSON_DEPTH} levels", "VALIDATION_ERROR")],
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in items:
                if isinstance(key, str):
                    stack.append((key, depth))
                stack.append((child, depth + 1))


def json_body(required: bool = True) -> Any:
    """The parsed JSON body (None for an empty one unless `required`).

    Raises BadRequest (400) when it is missing or not JSON, ValidationError (422) when it nests too
    deeply, RequestEntityTooLarge (413) when it is over the limit.
    """
    raw = _read_body()
    if not raw.strip():
        if required:
            raise _malformed("a JSON body is required")
        return None
    return _parse(raw)


def _parse(raw: bytes) -> Any:
    try:
        data = json.loads(raw, parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_no_constant)
    except RecursionError:
        raise _malformed("nested too deeply to parse") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, out-of-range numbers
        raise _malformed(str(exc)[:200]) from None
    _check_value(data)
    return data


def _not_an_object(field: str = "body") -> ValidationError:
    return ValidationError("the request body must be a JSON object", [_type_problem(field, "an object")])


def json_object() -> dict[str, Any]:
    """The body as a JSON object; raises like `json_body`, and ValidationError (422) for another type."""
    data = json_body()
    if not isinstance(data, dict):
        raise _not_an_object()
    return data


def optional_object(fields: dict[str, type]) -> dict[str, Any]:
    """An optional JSON object body with only `fields` (name -> type); {} when the body is empty.

    Raises ValidationError (422) for another type, an unknown field or a value of the wrong type.
    """
    raw = _read_body()
    if not raw.strip():
        return {}
    data = _parse(raw)
    if not isinstance(data, dict):  # `null` too: it is a body, and not an object
        raise _not_an_object()
    problems = []
    for key, value in data.items():
        if key not in fields:
            problems.append(Problem(key, "unknown field", "VALIDATION_ERROR"))
        elif value is not None and not isinstance(value, fields[key]):
            problems.append(_type_problem(key, f"a {fields[key].__name__}"))
    if problems:
        raise ValidationError("invalid request body", problems)
    return {key: value for key, value in data.items() if value is not None}


def _type_problem(field: str, expected: str) -> Problem:
    return Problem(field, f"must be {expected}", "TYPE_MISMATCH")


# JSON field -> (accepted type, how to name it in an error)
_TYPES: dict[str, tuple[type, str]] = {
    "workflow": (str, "a non-empty string"),
    "version": (str, "a non-empty string"),
    "input": (dict, "an object"),
    "priority": (str, "a string"),
    "externalId": (str, "a string"),
    "tags": (dict, "an object of strings"),
    "timeout": (int, "an integer (milliseconds)"),
    "maxRetries": (int, "an integer"),
    "createdBy": (str, "a string"),
    "parentInstanceId": (str, "a string"),
    "callbackUrl": (str, "a string"),
    "queue": (str, "a string"),
    "start": (bool, "a boolean"),
    "startAt": (str, "an ISO 8601 date and time"),
}
# The seed's names for three of them (SPEC section 2c): one field under either name, never both.
ALIASES = {"workflowName": "workflow", "workflowVersion": "version", "inputData": "input"}
_TYPES.update({alias: _TYPES[field] for alias, field in ALIASES.items()})


def names_as_sent(body: Any) -> dict[str, str]:
    """field -> the alias `body` gives it under (only aliases given a value: null means absent)."""
    if not isinstance(body, dict):
        return {}
    return {field: alias for alias, field in ALIASES.items() if body.get(alias) is not None}


def rename_as_sent(problems: list[Problem], sent: dict[str, str]) -> list[Problem]:
    """`problems` with each field named as the client sent it (`inputData.email`, not `input.email`)."""
    renamed = []
    for problem in problems:
        name = problem.field
        for field, alias in sent.items():
            if name == field or name.startswith((f"{field}.", f"{field}[")):
                name = alias + name[len(field) :]
        renamed.append(Problem(name, problem.message, problem.code))
    return renamed


def _typed_fields(body: dict[str, Any], prefix: str, problems: list[Problem]) -> dict[str, Any]:
    """The values of known fields that have the right type, under their own names (aliases resolved)."""
    values: dict[str, Any] = {}
    for key, value in body.items():
        if key not in _TYPES:
            problems.append(Problem(f"{prefix}{key}", "unknown field", "VALIDATION_ERROR"))
        elif value is not None:
            kind, expected = _TYPES[key]
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                problems.append(_type_problem(f"{prefix}{key}", expected))
            else:
                values[ALIASES.get(key, key)] = value
    for alias, field in ALIASES.items():
        if body.get(alias) is not None and body.get(field) is not None:
            message = f"is given twice, as {field!r} and as {alias!r}: send one of them"
            problems.append(Problem(f"{prefix}{field}", message, "VALIDATION_ERROR"))
    return values


def _tag_problems(tags: dict[str, Any]) -> list[tuple[str, str]]:
    bad = []
    for key, value in tags.items():
        if not TAG_KEY.fullmatch(key):
            bad.append((f"tags.{key[:128]}", "a tag key is 1-128 letters, digits, '_', '.', '/' or '-'"))
        elif not isinstance(value, str) or len(value) > 1024:
            bad.append((f"tags.{key}", "must be a string of at most 1,024 characters"))
    return bad


def _constraints(v: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for every value of the right type that is still out of range."""
    bad = []
    if v.get("priority", "normal") not in PRIORITIES:
        bad.append(("priority", f"must be one of {', '.join(PRIORITIES)}"))
    if "externalId" in v and not 0 < len(v["externalId"]) <= 255:
        bad.append(("externalId", "must be 1 to 255 characters"))
    elif str(v.get("externalId", "")).startswith(SCHEDULE_KEY_PREFIX):
        # the schedules' own keys: taken here, one would stand for a fire time (its input, or a
        # run that never ends and skips every fire with overlap: skip)
        bad.append(("externalId", f"must not start with {SCHEDULE_KEY_PREFIX!r} (the schedules' keys)"))
    bad += _tag_problems(v.get("tags", {}))
    if not 0 < v.get("timeout", 1) <= MAX_TIMEOUT_MS:
        bad.append(("timeout", f"must be between 1 and {MAX_TIMEOUT_MS} (milliseconds)"))
    if not 0 <= v.get("maxRetries", 0) <= 100:
        bad.append(("maxRetries", "must be between 0 and 100"))
    callback = str(v.get("callbackUrl", "http://"))
    if not callback.startswith(("http://", "https://")) or len(callback) > 2048:
        bad.append(("callbackUrl", "must be an http(s) URL of at most 2,048 characters"))
    if len(v.get("createdBy", "")) > 255:
        bad.append(("createdBy", "must be at most 255 characters"))
    if "queue" in v and not _QUEUE.fullmatch(v["queue"]):
        bad.append(("queue", "must be 1-64 letters, digits, '_', '.' or '-'"))
    if "startAt" in v and instant(v["startAt"]) is None:
        bad.append(("startAt", "must be an ISO 8601 date and time such as 2024-05-01T09:00:00Z"))
    return bad


def instant(text: str) -> datetime | None:
    """An ISO 8601 / RFC 3339 date and time as naive UTC (without an offset: UTC), held within the
    times the store can hold (1970 to 9999: a time before is as past as 1970); None if not one."""
    if len(text) > 64:
        return None
    normal = text.strip().upper()
    leap = _LEAP_SECOND.search(normal)
    if leap:  # RFC 3339 allows :60; it is taken as the last second of the minute
        normal = normal[: leap.start()] + ":59" + normal[leap.end() :]
    try:
        parsed = datetime.fromisoformat(normal)
    except ValueError:
        return None
    offset = parsed.utcoffset()
    naive = parsed.replace(tzinfo=None)
    if offset:
        try:
            naive -= offset
        except OverflowError:  # moved before year 1 or past 9999
            naive = _EARLIEST if offset > timedelta(0) else _LATEST
    return min(max(naive, _EARLIEST), _LATEST)


def instance_request(body: Any, prefix: str = "") -> InstanceRequest:
    """Validate a create-instance body; raises ValidationError listing every problem.

    Each problem names the field as the body gave it: `workflowName` when that is the name used.
    """
    if not isinstance(body, dict):
        raise ValidationError("invalid instance request", [_type_problem(prefix or "body", "an object")])
    problems: list[Problem] = []
    v = _typed_fields(body, prefix, problems)
    later: list[Problem] = []  # about values of the right type: named below as the body names them
    typed_wrong = {p.field for p in problems}
    if not v.get("workflow") and not typed_wrong & {f"{prefix}workflow", f"{prefix}workflowName"}:
        later.append(Problem("workflow", "is required", "REQUIRED_FIELD"))
    if v.get("version") == "":  # "" is no version; leave it out (or say `latest`) for the highest
        later.append(Problem("version", "must not be empty", "VALIDATION_ERROR"))
    later += [Problem(field, message, "VALIDATION_ERROR") for field, message in _constraints(v)]
    for problem in rename_as_sent(later, names_as_sent(body)):
        problems.append(Problem(f"{prefix}{problem.field}", problem.message, problem.code))
    if problems:
        raise ValidationError("invalid instance request", problems)
    return InstanceRequest(
        workflow=str(v["workflow"]),
        version=v.get("version"),
        input=v.get("input", {}),
        priority=v.get("priority", "normal"),
        external_id=v.get("externalId"),
        tags=v.get("tags", {}),
        timeout_ms=v.get("timeout"),
        max_retries=v.get("maxRetries"),
        created_by=v.get("createdBy"),
        parent_instance_id=v.get("parentInstanceId"),
        callback_url=v.get("callbackUrl"),
        queue=v.get("queue"),
        start=v.get("start", True),
        start_at=instant(v["startAt"]) if "startAt" in v else None,
    )
