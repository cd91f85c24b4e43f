"""Draining: set when this worker begins a warm shutdown, read by `ctx.should_stop`."""

from __future__ import annotations

import threading

_draining = threading.Event()


def begin_draining() -> None:
    _draining.set()


def draining() -> bool:
    return _draining.is_set()
