"""Draining: set in the worker's main process when a warm shutdown begins, seen by its pool children.

Celery's prefork children do not receive the worker's SIGTERM, so the flag is a process-shared event
created before the pool forks: the children inherit it and `ctx.should_stop` reads it.
"""

from __future__ import annotations

import multiprocessing

_draining = multiprocessing.get_context("fork").Event()


def begin_draining() -> None:
    _draining.set()


def draining() -> bool:
    return _draining.is_set()
