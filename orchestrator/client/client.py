"""`Client`: the entry point. `client.definitions`, `client.instances`, `client.submit(...)` and
`client.run(id)`; every failure is an exception of `errors.py`."""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from orchestrator.client.errors import ClientError, api_error
from orchestrator.client.http import Transport, settings_of
from orchestrator.client.limits import Limits
from orchestrator.client.models import (
    BatchResult,
    Definition,
    DefinitionSummary,
    InstanceSummary,
    SignalDelivery,
)
from orchestrator.client.runs import Run
from orchestrator.client.schedules import Schedules

MAX_BATCH = 100  # items per batch request, the API's limit


class Definitions:
    """Workflow definitions: store, read, list."""

    def __init__(self, transport: Transport) -> None:
        self._http = transport

    def put(self, definition: Mapping[str, Any] | str | os.PathLike[str]) -> Definition:
        """Store a definition given as a dict or as the path of a JSON file. Storing the same
        (name, version) with the same content again is accepted; with other content it raises
        Conflict; an invalid one raises ValidationFailed naming each field. Raises ClientError when
        the file cannot be read or is not JSON."""
        body = dict(definition) if isinstance(definition, Mapping) else read_json(definition)
        return Definition.from_json(self._http.call("POST", "/api/v1/definitions", body))

    def get(self, name: str, version: str | None = None) -> Definition:
        """One version, or the highest (`None` or `latest`). Raises NotFound."""
        path = f"/api/v1/definitions/{quote(name, safe='')}"
        if version:
            path += f"/{quote(version, safe='')}"
        return Definition.from_json(self._http.call("GET", path))

    def list(self) -> list[DefinitionSummary]:
        """Every stored (name, version), the newest version first within a name."""
        answer = self._http.call("GET", "/api/v1/definitions")
        return [DefinitionSummary.from_json(d) for d in answer.get("definitions", [])]


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON in a file; ClientError naming the file when it cannot be read or parsed."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as exc:
        raise ClientError(f"cannot read {os.fspath(path)}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ClientError(f"{os.fspath(path)} is not valid JSON: {exc}") from None


class Instances:
    """Workflow instances: list (every page, lazily) and create many at once."""

    def __init__(self, transport: Transport) -> None:
        self._http = transport

    def list(
        self,
        status: str | list[str] | None = None,
        workflow: str | None = None,
        tags: Mapping[str, str] | None = None,
        external_id: str | None = None,
        page_size: int = 100,
        delayed: bool | None = None,
    ) -> Iterator[InstanceSummary]:
        """Every matching instance, newest first, fetched a page at a time as the iteration gets
        there (by the API's `nextCursor`: no row is repeated or skipped while others are created).
        Filters combine with AND; several `status`es match any of them; `tags` must all match;
        `delayed` True: pending with a startAt to come (False: the others)."""
        params: dict[str, Any] = {"workflow": workflow, "externalId": external_id, "limit": page_size}
        if delayed is not None:
            params["delayed"] = "true" if delayed else "false"
        if status:
            params["status"] = status if isinstance(status, str) else ",".join(status)
        if tags:
            params["tag"] = [f"{key}:{value}" for key, value in tags.items()]
        params = {k: v for k, v in params.items() if v is not None}
        cursor: str | None = None
        while True:
            page = self._http.call("GET", "/api/v1/instances", params={**params, "cursor": cursor})
            for item in page.get("instances", []):
                yield InstanceSummary.from_json(item)
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def create_many(self, requests: Sequence[Mapping[str, Any]]) -> builtins.list[BatchResult]:
        """Create instances from API request bodies (`{"workflow", "input", ...}`), 100 per request;
        one result per item, in order: each created (or found by `externalId`) on its own, or
        refused with the error it alone would have had."""
        results: builtins.list[BatchResult] = []
        for start in range(0, len(requests), MAX_BATCH):
            chunk = [dict(item) for item in requests[start : start + MAX_BATCH]]
            answer = self._http.call("POST", "/api/v1/instances/batch", {"instances": chunk})
            for item in answer["results"]:
                index = start + int(item["index"])
                if "instance" in item:
                    summary = InstanceSummary.from_json(item["instance"])
                    results.append(BatchResult(index, int(item["status"]), instance=summary))
                else:
                    error = item.get("error") or {}
                    refused = api_error(
                        int(item["status"]),
                        str(error.get("code")),
                        str(error.get("message")),
                        error.get("details"),
                    )
                    results.append(BatchResult(index, int(item["status"]), error=refused))
        return results


def instance_request(
    workflow: str,
    input: Mapping[str, Any] | None = None,
    version: str | None = None,
    external_id: str | None = None,
    priority: str | None = None,
    tags: Mapping[str, str] | None = None,
    callback_url: str | None = None,
    start: bool = True,
    start_at: datetime | str | None = None,
) -> dict[str, Any]:
    """The API's create body for these options (those left out are not sent). `start_at`: a
    datetime (one without a time zone is UTC) or an ISO 8601 string."""
    # the input as given: one that is not an object is the API's to refuse, naming the field
    body: dict[str, Any] = {"workflow": workflow, "input": {} if input is None else input}
    optional = {
        "version": version,
        "externalId": external_id,
        "priority": priority,
        "tags": dict(tags) if tags else None,
        "callbackUrl": callback_url,
        "startAt": iso_instant(start_at) if isinstance(start_at, datetime) else start_at,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if not start:
        body["start"] = False
    return body


def iso_instant(value: datetime) -> str:
    """A datetime as the API reads it: ISO 8601 in UTC (a naive one is taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


class Client:
    """The orchestrator's HTTP API from Python.

    `base_url` defaults to `ORCH_API_URL`, else http://127.0.0.1:8080; `token` to `ORCH_API_TOKEN`
    (sent as `Authorization: Bearer`). `timeout` bounds each request (not `Run.wait`). Use it as a
    context manager, or call `close()`, to release its connections.
    """

    def __init__(self, base_url: str | None = None, token: str | None = None, timeout: float = 30.0) -> None:
        url, resolved_token = settings_of(base_url, token)
        self.base_url = url
        self._http = Transport(url, resolved_token, timeout)
        self.definitions = Definitions(self._http)
        self.instances = Instances(self._http)
        self.schedules = Schedules(self._http)
        self.limits = Limits(self._http)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def submit(
        self,
        workflow: str,
        input: Mapping[str, Any] | None = None,
        version: str | None = None,
        external_id: str | None = None,
        priority: str | None = None,
        tags: Mapping[str, str] | None = None,
        callback_url: str | None = None,
        start: bool = True,
        start_at: datetime | str | None = None,
    ) -> Run:
        """Create (and unless `start=False`, start) an instance of `workflow`; its Run. The same
        `external_id` again returns the existing instance. With `start_at` (a datetime, naive = UTC,
        or an ISO 8601 string) it stays pending until then. Raises NotFound (`WORKFLOW_NOT_FOUND`)
        for an unknown workflow or version, ValidationFailed (naming each field) for a bad input."""
        body = instance_request(
            workflow, input, version, external_id, priority, tags, callback_url, start, start_at
        )
        summary = InstanceSummary.from_json(self._http.call("POST", "/api/v1/instances", body))
        return Run(self._http, summary.id, summary)

    def run(self, instance_id: str) -> Run:
        """A handle on an existing instance (nothing is asked until it is used)."""
        return Run(self._http, instance_id)

    def signal(self, instance_id: str, name: str, data: Any = None) -> SignalDelivery:
        """Send the signal `name` with `data` (any JSON value) to the instance's wait node: it
        completes the node if it waits, else is stored until the node is reached (`delivered`
        False). Raises NotFound (no such instance, or no wait node for `name`) and Conflict (the
        instance has ended, the node is done, or a signal `name` is already stored)."""
        path = f"/api/v1/instances/{quote(instance_id, safe='')}/signals/{quote(name, safe='')}"
        return SignalDelivery.from_json(self._http.call("POST", path, data))
