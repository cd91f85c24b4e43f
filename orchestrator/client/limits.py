"""`client.limits`: every concurrency and rate limit with its use, and an executor's limits set
through the API, which win over `ORCH_LIMITS` and the code field by field (docs/api.md, Limits)."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from orchestrator.client.http import Transport
from orchestrator.client.models import _build, _raw

UNSET: Any = object()  # a field left out of a `set`: it keeps inheriting ORCH_LIMITS and the code


@dataclass(frozen=True)
class Limit:
    """One limit as `GET /api/v1/limits` shows it: `limit` is slots, or a rate such as "10/s";
    `source` is api, env or code for an executor's, definition for a node's or a key's."""

    name: str = ""
    kind: str = ""
    limit: int | str = 0
    in_use: int = 0
    waiting: int = 0
    source: str = ""
    raw: dict[str, Any] = _raw()

    @classmethod
    def from_json(cls, data: Any) -> Limit:
        return _build(cls, data)


@dataclass(frozen=True)
class ExecutorLimits:
    """An executor's limits in effect (None: none of that kind), where each comes from
    (`sources`), and the fields set through the API (`override`, None when it sets none)."""

    name: str = ""
    executor: str = ""
    concurrency: int | None = None
    rate: str | None = None
    sources: dict[str, str | None] = field(default_factory=dict)
    override: dict[str, Any] | None = None
    raw: dict[str, Any] = _raw()

    @classmethod
    def from_json(cls, data: Any) -> ExecutorLimits:
        return _build(cls, data)


class Limits:
    """List limits; set and clear an executor's limits through the API. Refusals raise the client's
    errors: ValidationFailed (422, naming the field), NotFound (clearing what was never set)."""

    def __init__(self, transport: Transport) -> None:
        self._http = transport

    def _path(self, executor: str) -> str:
        return f"/api/v1/limits/{quote(executor, safe='')}"

    def list(self) -> builtins.list[Limit]:
        """Every limit, by name then kind (page after page)."""
        found: builtins.list[Limit] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 500} if cursor is None else {"limit": 500, "cursor": cursor}
            answer = self._http.call("GET", "/api/v1/limits", params=params)
            found += [Limit.from_json(item) for item in answer.get("limits", [])]
            cursor = answer.get("nextCursor")
            if cursor is None:
                return found

    def set(
        self, executor: str, *, concurrency: int | None = UNSET, rate: str | None = UNSET
    ) -> ExecutorLimits:
        """Set the executor's limits (`crm.push` or `executor:crm.push`), replacing those set before:
        each field given wins over ORCH_LIMITS and the code (None: no limit of that kind), a field
        left out keeps inheriting them. A raised limit lets waiting nodes go at once."""
        body = {k: v for k, v in (("concurrency", concurrency), ("rate", rate)) if v is not UNSET}
        return ExecutorLimits.from_json(self._http.call("PUT", self._path(executor), body))

    def clear(self, executor: str) -> ExecutorLimits:
        """Drop the executor's limits set through the API (NotFound if none); what applies now."""
        return ExecutorLimits.from_json(self._http.call("DELETE", self._path(executor)))
