"""The failures schemathesis may report that docs/api.md documents as expected, and nothing else.

Loaded by `tests/api/schemathesis.toml` (`hooks`). A failure is dropped only when the server's answer
says why, in its error details, and that reason is one the OpenAPI document states only in prose.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import schemathesis

# The fields a definition's cross-field rules are reported under: `nodes`, `nodes[2].dependsOn[0]`,
# `inputs.email.default`. JSON Schema cannot say that a `dependsOn` names another node, that a template
# names a node upstream, that an executor is registered or that the graph has no cycle.
_DEFINITION_RULES = re.compile(r"(nodes|inputs)([.\[].*)?")
# What a create checks against stored data: the input against the workflow's `inputs`, and that
# `parentInstanceId` names a running instance.
_STORED_DATA_RULES = re.compile(r"((input|inputData)([.\[].*)?|parentInstanceId)")
# What a schedule's create or change checks beyond its schema: that the cron expression parses and
# fires, that the zone exists, that the workflow (at the version) exists and takes the input, and
# that a change does not rename the schedule.
_SCHEDULE_RULES = re.compile(r"(cron|timezone|workflow|version|name|(input)([.\[].*)?)")


def _problems(response: Any) -> list[dict[str, Any]]:
    try:
        details = json.loads(response.content)["error"]["details"]
    except (ValueError, KeyError, TypeError):
        return []
    return details if isinstance(details, list) else []


def _integral_float(case: Any, field: str) -> bool:
    """The request gave `field` as a number like 5.0: an integer to JSON Schema, not to the server."""
    for values in (case.body, case.query):
        if isinstance(values, dict) and field in values:
            value = values[field]
            return isinstance(value, float) and value.is_integer()
    return False


def _egress_denied(problem: dict[str, Any]) -> bool:
    """A `callbackUrl` whose host is a literal address the egress policy denies (docs/api.md, create:
    a 422 `EGRESS_DENIED` the schema cannot tell from an allowed address)."""
    return problem.get("field") == "callbackUrl" and problem.get("code") == "EGRESS_DENIED"


def _documented(operation: str, case: Any, status: int, problems: list[dict[str, Any]]) -> bool:
    """True for a schema-valid request refused for one of the reasons docs/api.md lists."""
    if status != 422 or not problems:
        return False
    fields = [str(p.get("field", "")) for p in problems]
    if all(p.get("code") == "TYPE_MISMATCH" and _integral_float(case, p.get("field")) for p in problems):
        return True
    if operation == "POST /api/v1/definitions":
        return all(_DEFINITION_RULES.fullmatch(f) or _integral_float(case, f) for f in fields)
    if operation == "POST /api/v1/instances":
        return all(
            _STORED_DATA_RULES.fullmatch(f) or _integral_float(case, f) or _egress_denied(p)
            for f, p in zip(fields, problems, strict=True)
        )
    if operation in ("POST /api/v1/schedules", "PATCH /api/v1/schedules/{name}"):
        return all(_SCHEDULE_RULES.fullmatch(f) or _integral_float(case, f) for f in fields)
    if operation in ("GET /api/v1/instances", "GET /api/v1/limits"):
        return fields == ["cursor"]  # only a `nextCursor` the server gave out is a cursor
    if operation == "PUT /api/v1/limits/{name}":
        return fields == ["rate"]  # a rate's count of at most 1,000,000, its period of at most a day
    return False


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure except a documented rejection of schema-valid data."""
    if type(failure).__name__ != "RejectedPositiveData":
        return True
    operation = f"{case.method.upper()} {case.operation.path}"
    problems = _problems(response)
    if not _documented(operation, case, response.status_code, problems):
        return True
    if os.environ.get("API_CONTRACT_DROPPED"):  # a record of what was let through, to review by hand
        with open(os.environ["API_CONTRACT_DROPPED"], "a") as record:
            record.write(json.dumps({"operation": operation, "problems": problems}) + "\n")
    return False
