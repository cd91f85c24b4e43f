"""A schedule as a client describes it (`POST`/`PATCH /api/v1/schedules`): the typed value and the
checks that need no database. That the workflow exists and the input fits its declared inputs is
checked by `schedules.py`, which looks the definition up.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator import cron
from orchestrator.errors import Problem, ValidationError
from orchestrator.instances import PRIORITIES

OVERLAPS = ("skip", "allow", "cancelPrevious")
CATCHUPS = ("none", "last", "all")
# a name is part of its instances' externalId (`schedule:<name>:<fire time>`) and of the API's paths
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", re.ASCII)
TAG_KEY = re.compile(r"[A-Za-z0-9_./-]{1,128}", re.ASCII)
# the tags every fired instance carries; a schedule's own tags cannot claim them
SCHEDULE_TAG, FIRE_TIME_TAG = "scheduleName", "scheduledFor"
REQUIRED = ("name", "workflow", "cron")


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    workflow: str
    cron: str
    version: str | None = None  # None: the latest version at each fire time
    timezone: str = "UTC"
    input: dict[str, Any] = field(default_factory=dict)
    priority: str = "normal"
    tags: dict[str, str] = field(default_factory=dict)
    overlap: str = "skip"
    catchup: str = "none"
    paused: bool = False

    def as_body(self) -> dict[str, Any]:
        """The spec as a request body would give it (what a PATCH is merged into)."""
        return asdict(self)


# JSON field -> (accepted type, how to name it in an error)
_TYPES: dict[str, tuple[type, str]] = {
    "name": (str, "a string"),
    "workflow": (str, "a string"),
    "version": (str, "a string"),
    "cron": (str, "a string"),
    "timezone": (str, "a string"),
    "input": (dict, "an object"),
    "priority": (str, "a string"),
    "tags": (dict, "an object of strings"),
    "overlap": (str, "a string"),
    "catchup": (str, "a string"),
    "paused": (bool, "a boolean"),
}


def _typed(body: dict[str, Any], problems: list[Problem]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in body.items():
        if key not in _TYPES:
            problems.append(Problem(key, "unknown field", "VALIDATION_ERROR"))
        elif value is not None:  # null: the field's default
            kind, expected = _TYPES[key]
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                problems.append(Problem(key, f"must be {expected}", "TYPE_MISMATCH"))
            else:
                values[key] = value
    return values


def _range_problems(v: dict[str, Any]) -> list[Problem]:
    bad: list[tuple[str, str]] = []
    if "name" in v and not NAME.fullmatch(v["name"]):
        bad.append(("name", "must be 1-128 letters, digits, '_', '.' or '-', the first a letter or digit"))
    if "workflow" in v and not 0 < len(v["workflow"]) <= 128:
        bad.append(("workflow", "must be 1 to 128 characters"))
    if "version" in v and not 0 < len(v["version"]) <= 64:
        bad.append(("version", "must be 1 to 64 characters (leave it out for the latest version)"))
    if len(v.get("cron", "")) > 255:
        bad.append(("cron", "must be at most 255 characters"))
    if len(v.get("timezone", "")) > 64:
        bad.append(("timezone", "must be at most 64 characters"))
    if v.get("priority", "normal") not in PRIORITIES:
        bad.append(("priority", f"must be one of {', '.join(PRIORITIES)}"))
    if v.get("overlap", "skip") not in OVERLAPS:
        bad.append(("overlap", f"must be one of {', '.join(OVERLAPS)}"))
    if v.get("catchup", "none") not in CATCHUPS:
        bad.append(("catchup", f"must be one of {', '.join(CATCHUPS)}"))
    bad += _tag_problems(v.get("tags", {}))
    return [Problem(name, message, "VALIDATION_ERROR") for name, message in bad]


def _tag_problems(tags: dict[str, Any]) -> list[tuple[str, str]]:
    bad = []
    for key, value in tags.items():
        if not TAG_KEY.fullmatch(key):
            bad.append((f"tags.{key[:128]}", "a tag key is 1-128 letters, digits, '_', '.', '/' or '-'"))
        elif key in (SCHEDULE_TAG, FIRE_TIME_TAG):
            bad.append((f"tags.{key}", "is set on every fired instance by the schedule itself"))
        elif not isinstance(value, str) or len(value) > 1024:
            bad.append((f"tags.{key}", "must be a string of at most 1,024 characters"))
    return bad


def spec_from_body(body: Any) -> ScheduleSpec:
    """Validate a schedule body; raises ValidationError naming the field of every problem (a
    malformed `cron` is INVALID_CRON, an unknown `timezone` INVALID_TIMEZONE)."""
    if not isinstance(body, dict):
        raise ValidationError("invalid schedule", [Problem("body", "must be an object", "TYPE_MISMATCH")])
    problems: list[Problem] = []
    v = _typed(body, problems)
    wrong = {p.field for p in problems}
    for name in REQUIRED:
        if name not in v and name not in wrong:
            problems.append(Problem(name, "is required", "REQUIRED_FIELD"))
    problems += _range_problems(v)
    if "cron" in v and len(v["cron"]) <= 255 and len(v.get("timezone", "")) <= 64:
        problems += cron.problems(v["cron"], v.get("timezone", "UTC"))
    if problems:
        raise ValidationError("invalid schedule", problems)
    return ScheduleSpec(**v)
