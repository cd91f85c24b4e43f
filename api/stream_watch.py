"""What the event streams of one API process wait on: one loop that reads the change marks of every
watched instance (`orchestrator/changes.py`) each tick and wakes the streams whose instance changed.

Without it each open stream read its instance's status, nodes and log every half second: four
queries per stream per poll, so 200 idle streams made 1,600 queries a second and kept the connection
pool busy enough to delay `/health`. With it an idle stream costs nothing between its keepalives, and
a process costs three queries a tick however many streams it serves.

The loop is a thread (a greenlet under gunicorn's gevent workers), started with the first watched
instance and ended when none is left.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

from sqlalchemy import Engine

from orchestrator import changes

log = logging.getLogger(__name__)

UNKNOWN: Any = object()  # the mark of an instance before the loop has read it once


class InstanceWatch:
    """Change marks of the instances watched in this process, refreshed every `interval` seconds."""

    def __init__(self, engine: Engine, interval: float) -> None:
        self._engine = engine
        self._interval = interval
        self._changed = threading.Condition()
        self._watchers: Counter[str] = Counter()
        self._marks: dict[str, changes.Mark | None] = {}  # None: the instance is gone
        self._running = False
        self._failing = False

    def watch(self, instance_id: str) -> None:
        with self._changed:
            self._watchers[instance_id] += 1
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="event-stream-watch", daemon=True).start()

    def unwatch(self, instance_id: str) -> None:
        with self._changed:
            self._watchers[instance_id] -= 1
            if self._watchers[instance_id] <= 0:
                del self._watchers[instance_id]
                self._marks.pop(instance_id, None)

    def mark(self, instance_id: str) -> Any:
        """The instance's current mark (UNKNOWN before the first read): pass it to `wait_for_change`."""
        with self._changed:
            return self._marks.get(instance_id, UNKNOWN)

    def wait_for_change(self, instance_id: str, seen: Any, timeout: float) -> bool:
        """Wait until the instance's mark differs from `seen`, at most `timeout` seconds; True if it did."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._marks.get(instance_id, UNKNOWN) != seen, timeout=max(timeout, 0.0)
            )

    def _run(self) -> None:
        while True:
            with self._changed:
                ids = list(self._watchers)
                if not ids:
                    self._running = False
                    return
            fresh = self._read(ids)
            if fresh is not None:
                self._publish(ids, fresh)
            time.sleep(self._interval)

    def _read(self, ids: list[str]) -> dict[str, changes.Mark] | None:
        try:
            fresh = changes.marks(self._engine, ids)
        except Exception as exc:  # the streams keep their keepalives; the next tick tries again
            if not self._failing:
                log.warning("event streams: could not read the instances' change marks: %s", exc)
            self._failing = True
            return None
        self._failing = False
        return fresh

    def _publish(self, ids: list[str], fresh: dict[str, changes.Mark]) -> None:
        with self._changed:
            moved = False
            for instance_id in ids:
                if instance_id not in self._watchers:
                    continue  # unwatched while the marks were read
                mark = fresh.get(instance_id)
                if self._marks.get(instance_id, UNKNOWN) != mark:
                    self._marks[instance_id] = mark
                    moved = True
            if moved:
                self._changed.notify_all()
