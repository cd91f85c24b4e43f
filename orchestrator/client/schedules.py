"""`client.schedules`: cron schedules that start instances of a workflow (docs/api.md, Schedules)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from orchestrator.client.http import Transport
from orchestrator.client.models import InstanceSummary, _build, _raw, _time
from orchestrator.client.runs import Run


@dataclass(frozen=True)
class Schedule:
    """A schedule as the API shows it; `next_fire_at` is None while it is paused."""

    name: str = ""
    workflow: str = ""
    version: str | None = None
    cron: str = ""
    timezone: str = "UTC"
    input: dict[str, Any] = field(default_factory=dict)
    priority: str = "normal"
    tags: dict[str, str] = field(default_factory=dict)
    overlap: str = "skip"
    catchup: str = "none"
    paused: bool = False
    next_fire_at: datetime | None = _time()
    last_fire_at: datetime | None = _time()
    last_instance_id: str | None = None
    skipped_fires: int = 0
    created_at: datetime | None = _time()
    updated_at: datetime | None = _time()
    raw: dict[str, Any] = _raw()

    @classmethod
    def from_json(cls, data: Any) -> Schedule:
        return _build(cls, data)


class Schedules:
    """Create, list, read, change, pause, resume, trigger and delete schedules. Refusals raise the
    client's errors: ValidationFailed (422, naming the field), NotFound, Conflict (a name taken)."""

    def __init__(self, transport: Transport) -> None:
        self._http = transport

    def _path(self, name: str, action: str = "") -> str:
        return f"/api/v1/schedules/{quote(name, safe='')}{action}"

    def create(
        self,
        name: str,
        workflow: str,
        cron: str,
        *,
        timezone: str | None = None,
        input: Mapping[str, Any] | None = None,
        version: str | None = None,
        priority: str | None = None,
        tags: Mapping[str, str] | None = None,
        overlap: str | None = None,
        catchup: str | None = None,
        paused: bool | None = None,
    ) -> Schedule:
        """Store a schedule (options left out take the API's defaults: UTC, skip, none)."""
        body: dict[str, Any] = {"name": name, "workflow": workflow, "cron": cron}
        optional = {
            "timezone": timezone,
            "input": dict(input) if input is not None else None,
            "version": version,
            "priority": priority,
            "tags": dict(tags) if tags is not None else None,
            "overlap": overlap,
            "catchup": catchup,
            "paused": paused,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        return Schedule.from_json(self._http.call("POST", "/api/v1/schedules", body))

    def list(self) -> builtins.list[Schedule]:
        """Every schedule, by name (page after page)."""
        found: builtins.list[Schedule] = []
        after: str | None = None
        while True:
            params = {"limit": 500} if after is None else {"limit": 500, "after": after}
            answer = self._http.call("GET", "/api/v1/schedules", params=params)
            found += [Schedule.from_json(item) for item in answer.get("schedules", [])]
            after = answer.get("nextAfter")
            if after is None:
                return found

    def get(self, name: str) -> Schedule:
        return Schedule.from_json(self._http.call("GET", self._path(name)))

    def change(self, name: str, **fields: Any) -> Schedule:
        """PATCH the fields given by their API names (`cron="0 4 * * *"`, `version=None` for the latest)."""
        return Schedule.from_json(self._http.call("PATCH", self._path(name), fields))

    def pause(self, name: str) -> Schedule:
        return Schedule.from_json(self._http.call("POST", self._path(name, "/pause")))

    def resume(self, name: str) -> Schedule:
        return Schedule.from_json(self._http.call("POST", self._path(name, "/resume")))

    def trigger(self, name: str) -> Run:
        """Fire now; the Run of the instance started. Raises Conflict when a previous run is open
        and the schedule's overlap is `skip`."""
        answer = self._http.call("POST", self._path(name, "/trigger"))
        summary = InstanceSummary.from_json(answer["instance"])
        return Run(self._http, summary.id, summary)

    def delete(self, name: str) -> Schedule:
        """Delete the schedule (its instances stay); what it was."""
        return Schedule.from_json(self._http.call("DELETE", self._path(name)))
