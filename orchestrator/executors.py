"""The executor registry: Python callables registered by name, never code sent over HTTP.

An executor is `fn(ctx, config) -> dict`. Names may be dotted (`datasync.dataExtractor`): the part
before the last dot is the executor's *domain*, which is also the Celery queue its nodes go to.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from orchestrator import limits
from orchestrator.context import ExecutionContext
from orchestrator.errors import ExecutorNotFound

Executor = Callable[[ExecutionContext, dict[str, Any]], Any]

DEFAULT_QUEUE = "default"

_registry: dict[str, Executor] = {}


def executor(
    name: str, *, concurrency: int | None = None, rate: str | None = None
) -> Callable[[Executor], Executor]:
    """Register the decorated function under `name`; registering another function there is an error.

    `concurrency` (running at once) and `rate` (`"100/m"`) hold every node of this executor to a
    cluster-wide limit (`limits.py`); ValueError for a bad one."""
    limits.declare(name, concurrency, rate)

    def register(fn: Executor) -> Executor:
        existing = _registry.get(name)
        if existing is not None and existing is not fn and _qualname(existing) != _qualname(fn):
            raise ValueError(f"executor {name!r} is already registered by {_qualname(existing)}")
        _registry[name] = fn
        return fn

    return register


def _qualname(fn: Executor) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def get(name: str) -> Executor:
    """The executor registered under `name`; raises `ExecutorNotFound`."""
    try:
        return _registry[name]
    except KeyError:
        raise ExecutorNotFound(f"no executor is registered as {name!r}") from None


def is_registered(name: str) -> bool:
    return name in _registry


def names() -> list[str]:
    return sorted(_registry)


def domain_of(name: str) -> str:
    """The queue a node of this executor goes to: its domain, or the default queue."""
    return name.rsplit(".", 1)[0] if "." in name else DEFAULT_QUEUE


def domains() -> list[str]:
    return sorted({domain_of(n) for n in _registry})


def load_modules(modules: Iterable[str]) -> None:
    """Import the executor modules (from `ORCH_EXECUTOR_MODULES`) so their decorators register."""
    import orchestrator.builtin_executors  # noqa: F401  (the built-ins are always there)

    for module in modules:
        if module.strip():
            importlib.import_module(module.strip())
