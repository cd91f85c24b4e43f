"""`/api/v1/instances/<id>/events`: Server-Sent Events of an instance until it ends.

Events, each `data` one JSON object:
- `node`: a node's state changed (`queries.node_states` shape); every node once at the start;
- `log`: a new execution-log line (the `/logs` shape), with the SSE `id` set to the line's id;
- `status`: the status object changed (the `/status` shape); once at the start;
- `end`: the instance ended (`{"status": ...}`), sent after its final node, log and status events;
  the server then closes the stream.

A stream reads its instance's status, nodes and new log lines when it opens and then each time the
process's watch (`api/stream_watch.py`, one loop reading every watched instance's change mark every
`POLL_S` seconds) sees that instance change, and at the latest every `FULL_POLL_S`. Between reads it
holds no database connection and sends a keepalive comment every `KEEPALIVE_S`. A reconnecting
client sends `Last-Event-ID` (browsers do) and gets only the log lines after it, plus a fresh
snapshot of status and nodes.

A stream waits on a condition, which under gunicorn's gevent workers (`api/gunicorn_conf.py`) yields to
the other requests of the process: a stream costs a greenlet, not a request thread. Each process
serves at most `ORCH_MAX_STREAMS` streams at once; one more is answered 503 with `Retry-After` at
once (the UI then polls), so streams can never take the whole process.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from sqlalchemy import Engine

from api.context import engine
from api.errors import error_response
from api.query import integer
from api.stream_watch import InstanceWatch
from orchestrator import logs, queries, views
from orchestrator.errors import NotFound
from orchestrator.states import FINISHED_INSTANCE

bp = Blueprint("events", __name__, url_prefix="/api/v1/instances")

POLL_S = 0.5  # how often the watch reads the change marks: the delay of an event at most
# also how soon a stream notices a client that went away: its next write fails
KEEPALIVE_S = 5.0
# a full read even without a moved mark: bounds what a change the marks did not show could delay
FULL_POLL_S = 60.0
_LOG_BATCH = 500
LOG_SETTLE_S = 5.0  # a log line that commits this long after its timestamp is still sent
_RETRY_MS = 2000
_FINISHED = {s.value for s in FINISHED_INSTANCE}
_COMPARED = (
    "status",
    "attempt",
    "workerId",
    "error",
    "itemsLeft",
)  # a node event is sent when one of these changes
_SLOTS = "orchestrator.stream_slots"
_WATCH = "orchestrator.instance_watch"
RETRY_AFTER_S = 10  # what a refused stream is told; the UI polls meanwhile


class StreamSlots:
    """How many event streams this process serves at once: a stream over `limit` is refused, not queued."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.open -= 1


@bp.record_once
def _install(state: BlueprintSetupState) -> None:
    # per app, so per gunicorn worker process (the app is built in each one)
    extensions = state.app.extensions
    extensions[_SLOTS] = StreamSlots(extensions["orchestrator.settings"].max_streams)
    extensions[_WATCH] = InstanceWatch(extensions["orchestrator.engine"], POLL_S)


def _event(name: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class _LogTail:
    """The new log lines of one instance, each sent once.

    Lines of parallel nodes can commit out of id order, so "after the newest id sent" could skip one:
    every look rereads the last `LOG_SETTLE_S` seconds and drops the ids already sent.
    """

    def __init__(self, db: Engine, instance_id: str, after_id: int) -> None:
        self.db = db
        self.instance_id = instance_id
        self.after_id = after_id  # a resumed stream: lines up to here were sent before
        self.sent: dict[int, datetime] = {}
        self.horizon: datetime | None = None

    def new_lines(self) -> list[dict[str, Any]]:
        since = None if self.horizon is None else self.horizon - timedelta(seconds=LOG_SETTLE_S)
        fresh: list[dict[str, Any]] = []
        while True:
            lines = logs.query(
                self.db, self.instance_id, since=since, after_id=self.after_id, limit=_LOG_BATCH
            )
            new = [line for line in lines if line["id"] not in self.sent]
            for line in new:
                stamp = datetime.fromisoformat(line["timestamp"].removesuffix("Z"))
                self.sent[line["id"]] = stamp
                self.horizon = max(self.horizon or stamp, stamp)
            fresh += new
            if len(lines) < _LOG_BATCH or not new:
                break
            since = datetime.fromisoformat(lines[-1]["timestamp"].removesuffix("Z"))
        if self.horizon is not None:
            oldest = self.horizon - timedelta(seconds=2 * LOG_SETTLE_S)
            self.sent = {i: stamp for i, stamp in self.sent.items() if stamp >= oldest}
        return fresh


def _poll(
    db: Engine, instance_id: str, nodes_seen: dict[str, tuple[Any, ...]], tail: _LogTail
) -> tuple[list[str], dict[str, Any]]:
    """One look at the instance: the events since the last look, and its status.

    Status is read first: what ended the instance was committed with its nodes and log lines, so
    the reads after it see all of them.
    """
    status = views.status(db, instance_id)
    events = []
    for node in queries.node_states(db, instance_id):
        key = tuple(node[k] for k in _COMPARED)
        if nodes_seen.get(node["nodeId"]) != key:
            nodes_seen[node["nodeId"]] = key
            events.append(_event("node", node))
    events += [_event("log", line, line["id"]) for line in tail.new_lines()]
    return events, status


def _stream(db: Engine, watch: InstanceWatch, instance_id: str, after_log: int) -> Iterator[str]:
    yield f"retry: {_RETRY_MS}\n\n"
    nodes_seen: dict[str, tuple[Any, ...]] = {}
    tail = _LogTail(db, instance_id, after_log)
    last_status: dict[str, Any] | None = None
    watch.watch(instance_id)
    try:
        last_sent = time.monotonic()
        while True:
            seen = watch.mark(instance_id)  # before the read: a change during it moves the mark again
            try:
                events, status = _poll(db, instance_id, nodes_seen, tail)
            except NotFound:
                yield _event("end", {"status": None})
                return
            read_at = time.monotonic()
            if status != last_status:
                events.append(_event("status", status))
                last_status = status
            if status["status"] in _FINISHED:
                events.append(_event("end", {"status": status["status"]}))
                yield "".join(events)
                return
            if events:
                yield "".join(events)
                last_sent = time.monotonic()
            while time.monotonic() - read_at < FULL_POLL_S:
                if watch.wait_for_change(instance_id, seen, KEEPALIVE_S - (time.monotonic() - last_sent)):
                    break
                if time.monotonic() - last_sent >= KEEPALIVE_S:
                    yield ": keepalive\n\n"  # a comment: keeps proxies from closing an idle stream
                    last_sent = time.monotonic()
    finally:
        watch.unwatch(instance_id)


@bp.get("/<instance_id>/events")
def events(instance_id: str) -> Response:
    """The event stream; 404 (JSON, before any event) for an unknown instance.

    `Last-Event-ID` (header) or `afterId` (query) resumes the log after that line id.
    """
    after = integer("afterId", 0, 0, 2**63 - 1) or 0
    header = request.headers.get("Last-Event-ID", "")
    if header.isascii() and header.isdigit() and len(header) < 19:
        after = max(after, int(header))
    db = engine()
    views.instance_summary_by_id(db, instance_id)  # NotFound -> 404
    slots: StreamSlots = current_app.extensions[_SLOTS]
    if not slots.take():
        refused = error_response(
            503,
            "TOO_MANY_STREAMS",
            f"this server already serves {slots.limit} event streams (ORCH_MAX_STREAMS); "
            f"retry later or poll /status and /nodes",
        )
        refused.headers["Retry-After"] = str(RETRY_AFTER_S)
        return refused
    stream = _stream(db, current_app.extensions[_WATCH], instance_id, after)
    response = Response(stream, mimetype="text/event-stream")
    # the server closes every response it was given (WSGI `close()`, called once): streamed to the
    # end, broken off by the client, or never started
    response.call_on_close(slots.give_back)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass events through as they come
    return response
