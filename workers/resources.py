"""Per-process resources. Celery's prefork pool forks children: an engine made before the fork must
not be used after it, so each process builds its own on first use."""

from __future__ import annotations

import os
import threading

from sqlalchemy import Engine

from orchestrator.db import make_engine
from orchestrator.settings import Settings

_lock = threading.Lock()
_engine: Engine | None = None
_engine_pid: int | None = None
_settings: Settings | None = None


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def engine() -> Engine:
    """This process's engine (pool sized for the worker's concurrency and the heartbeat thread)."""
    global _engine, _engine_pid
    if _engine is None or _engine_pid != os.getpid():
        with _lock:
            if _engine is None or _engine_pid != os.getpid():
                if _engine is not None:
                    _engine.dispose(close=False)  # the parent's connections belong to the parent
                _engine = make_engine(settings().database_url, settings().db_pool_size)
                _engine_pid = os.getpid()
    return _engine


def reset() -> None:
    """Forget cached settings and engine (tests that change the environment)."""
    global _engine, _settings, _engine_pid
    if _engine is not None:
        _engine.dispose()
    _engine = None
    _engine_pid = None
    _settings = None
