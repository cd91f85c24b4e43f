"""`Run`: a handle on one workflow instance: read it, follow it, wait for it, act on it.

`wait` follows the instance's event stream and returns at its `end` event. When the stream is
refused (503 `TOO_MANY_STREAMS`: the API process serves its maximum) it polls `/status` instead;
when the stream breaks or the API does not answer (a restart, a proxy that drops long requests) it
asks `/status` once, waits a moment and opens the stream again, until the timeout. Errors that a
repeat cannot fix (401, 404...) are raised at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from orchestrator.client.errors import (
    ApiUnreachable,
    ClientError,
    ServerError,
    TooManyStreams,
    WaitTimeout,
    WorkflowCancelled,
    WorkflowFailed,
)
from orchestrator.client.models import (
    Event,
    Instance,
    InstanceSummary,
    LogLine,
    MapItem,
    NodeExecution,
    Status,
)

if TYPE_CHECKING:
    from orchestrator.client.http import Transport

LOG_PAGE = 1000  # lines per request when `logs` reads the whole log
ITEM_PAGE = 100  # a map's items per request (each with its output): the API's most
# what `wait` and `events` retry: the API answered nothing, or failed in a way a repeat may not
_TRANSIENT = (ApiUnreachable, ServerError)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _left(deadline: float | None) -> float:
    return float("inf") if deadline is None else deadline - time.monotonic()


class Run:
    """One instance of a workflow, by id. `summary` is what the create (or lookup) answered, if any."""

    def __init__(
        self, transport: Transport, instance_id: str, summary: InstanceSummary | None = None
    ) -> None:
        self._http = transport
        self.id = instance_id
        self.summary = summary
        self._path = f"/api/v1/instances/{quote(instance_id, safe='')}"

    def __repr__(self) -> str:
        return f"Run({self.id!r})"

    # reading

    def status(self) -> Status:
        """The status object. Raises NotFound for an unknown instance."""
        return Status.from_json(self._http.call("GET", self._path + "/status"))

    def get(self) -> Instance:
        """The instance in full: input, node outputs (`context`), output, error."""
        return Instance.from_json(self._http.call("GET", self._path))

    def nodes(self) -> list[NodeExecution]:
        """Every node of the instance, with its status, attempt, output and error."""
        answer = self._http.call("GET", self._path + "/nodes")
        return [NodeExecution.from_json(node) for node in answer.get("nodes", [])]

    def logs(
        self,
        node: str | None = None,
        level: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[LogLine]:
        """Log lines, oldest first: of one `node`, at `level` or more severe, in a time range, after
        a line id. With `limit`, at most that many lines (one request); without, all of them (read
        in pages)."""
        params: dict[str, Any] = {"nodeId": node, "level": level}
        for key, value in (("since", since), ("until", until)):
            params[key] = value.isoformat() if isinstance(value, datetime) else value
        params = {k: v for k, v in params.items() if v is not None}
        if limit is not None:
            return self._log_page({**params, "afterId": after_id or 0, "limit": limit})
        lines: list[LogLine] = []
        after = after_id or 0
        while True:
            page = self._log_page({**params, "afterId": after, "limit": LOG_PAGE})
            lines += page
            if len(page) < LOG_PAGE:
                return lines
            after = max(line.id for line in page)

    def items(
        self, node: str, status: str | None = None, after: int | None = None, limit: int | None = None
    ) -> list[MapItem]:
        """The items of the map node `node` in index order, with their outputs: those in `status`,
        after index `after`. With `limit` (at most 100), at most that many (one request; pass the
        last one's `index` as `after` for the next); without, all of them (read in pages of 100).
        Raises NotFound for an unknown instance or a node that is not one of its maps."""
        path = f"{self._path}/nodes/{quote(node, safe='')}/items"
        params: dict[str, Any] = {"status": status, "after": after, "limit": limit or ITEM_PAGE}
        found: list[MapItem] = []
        while True:
            answer = self._http.call("GET", path, params={k: v for k, v in params.items() if v is not None})
            found += [MapItem.from_json(item) for item in answer.get("items", [])]
            if limit is not None or answer.get("next") is None:
                return found
            params["after"] = answer["next"]

    def _log_page(self, params: dict[str, Any]) -> list[LogLine]:
        answer = self._http.call("GET", self._path + "/logs", params=params)
        return [LogLine.from_json(line) for line in answer.get("logs", [])]

    # following

    def events(
        self,
        timeout: float | None = None,
        reconnect: bool = True,
        on_break: Callable[[ClientError], None] | None = None,
    ) -> Iterator[Event]:
        """The instance's events (`node`, `log`, `status`, then `end`) as they happen; ends after
        `end`. With `reconnect`, a stream that breaks, is refused (503) or cannot be opened because
        the API does not answer is opened again a second later (`on_break` is told why), resuming
        after the last log line seen: log lines are not repeated, and a fresh `status` and every
        `node` come again. Raises WaitTimeout past `timeout` seconds; errors a repeat cannot fix
        (401, 404...) at once."""
        deadline = _deadline(timeout)
        last_log: str | None = None
        while True:
            try:
                for kind, data, event_id in self._http.events(self._path + "/events", last_log, deadline):
                    if kind == "log" and event_id:
                        last_log = event_id
                    yield Event(kind, data, event_id)
                    if kind == "end":
                        return
            except _TRANSIENT as exc:
                if not reconnect:
                    raise
                if on_break is not None:
                    on_break(exc)
            if _left(deadline) <= 0:
                raise WaitTimeout(f"instance {self.id} did not end within {timeout} s")
            time.sleep(min(1.0, max(0.0, _left(deadline))))

    def wait(
        self, timeout: float | None = None, raise_on_failure: bool = False, poll_s: float = 1.0
    ) -> Status:
        """Block until the instance ends and return its final status.

        With `raise_on_failure`, a failed instance raises WorkflowFailed (its error's `code`,
        `node_id`, `message`) and a cancelled one WorkflowCancelled. Raises WaitTimeout after
        `timeout` seconds (None: no limit). Survives a refused or broken stream and an API that
        restarts (see the module's docstring)."""
        deadline = _deadline(timeout)
        streaming = True
        while True:
            if streaming:
                try:
                    final = self._follow(deadline)
                    if final is not None:
                        return self._outcome(final, raise_on_failure)
                except TooManyStreams:
                    streaming = False  # this process serves no more streams: poll from now on
                except _TRANSIENT:
                    pass
            try:
                status = self.status()
                if status.finished:
                    return self._outcome(status, raise_on_failure)
            except _TRANSIENT:
                pass
            if _left(deadline) <= 0:
                raise WaitTimeout(f"instance {self.id} did not end within {timeout} s")
            time.sleep(min(poll_s, max(0.0, _left(deadline))))

    def _follow(self, deadline: float | None) -> Status | None:
        """Read the stream to its `end`: the final status, or None if it stopped before."""
        last: Status | None = None
        for kind, data, _ in self._http.events(self._path + "/events", None, deadline):
            if kind == "status":
                last = Status.from_json(data)
            elif kind == "end":
                # the last `status` came just before; an instance that vanished has none
                return last if last is not None and last.finished else self.status()
        return None

    @staticmethod
    def _outcome(status: Status, raise_on_failure: bool) -> Status:
        if raise_on_failure and status.status == "failed":
            raise WorkflowFailed(status)
        if raise_on_failure and status.status == "cancelled":
            raise WorkflowCancelled(status)
        return status

    # acting: each answers the instance's new status; 409 Conflict when its state forbids it

    def start(self) -> Status:
        """Start an instance created with `start=False`."""
        return self._act("start")

    def pause(self) -> Status:
        return self._act("pause")

    def resume(self) -> Status:
        return self._act("resume")

    def cancel(self, reason: str | None = None) -> Status:
        return self._act("cancel", {"reason": reason} if reason else None)

    def retry(self, from_node: str | None = None) -> Status:
        """Run a failed instance again: its failed nodes and those the failure skipped, and with
        `from_node`, that node and everything downstream of it."""
        return self._act("retry", {"fromNode": from_node} if from_node else None)

    def _act(self, action: str, body: dict[str, Any] | None = None) -> Status:
        return Status.from_json(self._http.call("POST", f"{self._path}/{action}", body))
