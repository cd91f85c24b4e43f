"""Executor limits set through the API (`PUT|DELETE /api/v1/limits/<executor>`), stored in
`limit_overrides`, one row per executor.

Per field, the API's value wins over `ORCH_LIMITS`, which wins over the code (`@executor`); a field the
override does not give keeps inheriting, and a `null` removes that kind of limit.

Where the value is used:
- An admission pass (a worker's, the API's, the sweep's) reads the executor's row under the limit's
  row lock (`concurrency_under_lock`, from `admission._Pass.room`), so every process decides with the
  value last committed, whatever its copy says. A change that raises a limit runs a pass at once.
- Which limits a node is held to is worked out without a query when its message is about to be sent
  (`limits.node_gates`): from a copy of the overrides in each process, kept current by a thread in
  workers (`workers/limit_watch.py`, every `REFRESH_S`) and read again when stale in the API
  (`refresh_if_stale`). An executor that had no limit is held to a new one within that time; a rate's
  value is the copy's.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from orchestrator import executors, limits
from orchestrator.db import retrying
from orchestrator.errors import Conflict, NotFound, Problem, ValidationError
from orchestrator.limits import CONCURRENCY, RATE, Gate, Override, Rate
from orchestrator.models import LimitOverrideRow, LimitRow, utcnow
from orchestrator.outcomes import Dispatch

PREFIX = "executor:"
MAX_EXECUTOR_LENGTH = limits.MAX_NAME_LENGTH - len(PREFIX)  # 246: `executor:<name>` fits its column
# an executor's name in a path: `crm.push` or `executor:crm.push` (as `GET /api/v1/limits` names it)
_NAME = re.compile(rf"({PREFIX})?([A-Za-z0-9_.:-]{{1,{MAX_EXECUTOR_LENGTH}}})", re.ASCII)
NAME_PATTERN = f"^({PREFIX})?[A-Za-z0-9_.:-]{{1,{MAX_EXECUTOR_LENGTH}}}$"
# a rate as the API takes it: `limits.parse_rate`'s text without spaces
_RATE_TEXT = re.compile(r"[0-9]{1,7}/[0-9]{0,5}(s|sec|second|m|min|minute|h|hour)", re.ASCII)
RATE_PATTERN = "^[0-9]{1,7}/[0-9]{0,5}(s|sec|second|m|min|minute|h|hour)$"
REFRESH_S = 2.0  # how stale a process's copy may get
# executors with limits set through the API: every process reads them all every REFRESH_S, and
# every page of `GET /api/v1/limits` sorts them, so their number is bounded (a PUT for one more is 409)
MAX_OVERRIDES = 1000
UNLIMITED = 2**31  # the free slots of a limit an override removed


def executor_of(name: str) -> str:
    """The executor a path's `name` means; raises ValidationError naming `name`."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise ValidationError(
            "invalid limit name",
            [
                Problem(
                    "name",
                    f"must be an executor's name of 1 to {MAX_EXECUTOR_LENGTH} letters, digits, '_', '.', "
                    "':' or '-', optionally after 'executor:'",
                )
            ],
        )
    return match.group(2)


def parse(body: Any) -> Override:
    """A PUT body `{"concurrency": N | null, "rate": "10/s" | null}`: the fields it gives. Raises
    ValidationError naming each field that is not valid (an integral float such as 4.0 is 4)."""
    if not isinstance(body, dict):
        raise ValidationError("invalid limits", [Problem("body", "must be a JSON object")])
    problems = [
        Problem(str(field), "is not a field of a limit (concurrency, rate)", "UNKNOWN_FIELD")
        for field in body
        if field not in (CONCURRENCY, RATE)
    ]
    if not body and not problems:
        problems.append(Problem("body", "must give concurrency and/or rate"))
    found: Override = {}
    if CONCURRENCY in body:
        value = body[CONCURRENCY]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        try:
            found[CONCURRENCY] = None if value is None else limits.check_concurrency(value)
        except ValueError as exc:
            problems.append(Problem(CONCURRENCY, str(exc)))
    if RATE in body:
        value = body[RATE]
        try:
            if isinstance(value, str) and not _RATE_TEXT.fullmatch(value):
                raise ValueError('must be a rate such as "10/s", "100/m" or "1000/h", without spaces')
            found[RATE] = None if value is None else limits.parse_rate(value)
        except ValueError as exc:
            problems.append(Problem(RATE, str(exc)))
    if problems:
        raise ValidationError("invalid limits", problems)
    return found


def _override(row: Any) -> Override:
    found: Override = {}
    if row.concurrency_set:
        found[CONCURRENCY] = row.concurrency
    if row.rate_set:
        found[RATE] = None if row.rate is None else limits.parse_rate(row.rate)
    return found


def read(conn: Connection, executor: str) -> Override | None:
    row = conn.execute(select(LimitOverrideRow).where(LimitOverrideRow.executor == executor)).first()
    return None if row is None else _override(row)


def read_all(conn: Connection) -> dict[str, Override]:
    return {row.executor: _override(row) for row in conn.execute(select(LimitOverrideRow))}


_loaded_at = 0.0
_loading = threading.Lock()


def load(engine: Engine) -> dict[str, Override]:
    """Read every override into this process's copy (`limits.node_gates` uses it)."""
    global _loaded_at
    with engine.connect() as conn:
        found = read_all(conn)
    limits.set_api_overrides(found)
    _loaded_at = time.monotonic()
    return found


def refresh_if_stale(engine: Engine, max_age: float = REFRESH_S) -> None:
    """In a process without a watch thread (the API, before a request that may send messages): read
    the overrides again when the copy is older than `max_age` (one short query at most that often).
    Never from inside a transaction: on SQLite a read takes the write lock."""
    if time.monotonic() - _loaded_at < max_age or not _loading.acquire(blocking=False):
        return
    try:
        load(engine)
    finally:
        _loading.release()


def _shown(value: int | Rate | None) -> int | str | None:
    return value.text if isinstance(value, Rate) else value


def view(executor: str, override: Override | None) -> dict[str, Any]:
    """An executor's limits as the API shows them: each value in effect, where it comes from, and
    the API's override (its fields only)."""
    found = limits.sources(executor, override or {})
    return {
        "name": limits.executor_gate(executor),
        "executor": executor,
        CONCURRENCY: _shown(found[CONCURRENCY][0]),
        RATE: _shown(found[RATE][0]),
        "sources": {field: found[field][1] for field in (CONCURRENCY, RATE)},
        "override": None if override is None else {k: _shown(v) for k, v in override.items()},
    }


@retrying()
def _store(engine: Engine, executor: str, given: Override) -> None:
    values = {
        "concurrency_set": CONCURRENCY in given,
        "concurrency": given.get(CONCURRENCY),
        "rate_set": RATE in given,
        "rate": _shown(given.get(RATE)),
        "updated_at": utcnow(),
    }
    where = LimitOverrideRow.executor == executor
    with engine.begin() as conn:
        if conn.execute(update(LimitOverrideRow).where(where).values(**values)).rowcount:
            return
        if conn.execute(select(func.count()).select_from(LimitOverrideRow)).scalar_one() >= MAX_OVERRIDES:
            message = f"limits are set through the API for {MAX_OVERRIDES} executors, the most there can be"
            raise Conflict(message, [Problem("name", f"{message}: clear one first", "CONFLICT")])
        try:
            with conn.begin_nested():
                conn.execute(insert(LimitOverrideRow).values(executor=executor, **values))
        except IntegrityError:  # stored meanwhile by another request: this one's value is the last
            conn.execute(update(LimitOverrideRow).where(where).values(**values))


def put(engine: Engine, name: str, body: Any) -> tuple[dict[str, Any], list[Dispatch]]:
    """Store the override `body` for the executor `name` (replacing any: a field left out inherits
    again), and run an admission pass of its concurrency limit so that a raised or removed limit lets
    waiting nodes go now; the executor's limits, and the messages that pass lets through."""
    executor = executor_of(name)
    given = parse(body)
    _store(engine, executor, given)
    load(engine)
    return view(executor, given), _pass(engine, executor)


def clear(engine: Engine, name: str) -> tuple[dict[str, Any], list[Dispatch]]:
    """Drop the executor's override (NotFound if it has none); as `put`."""
    executor = executor_of(name)
    with engine.begin() as conn:
        gone = conn.execute(delete(LimitOverrideRow).where(LimitOverrideRow.executor == executor)).rowcount
    if not gone:
        raise NotFound(f"no limit set through the API for executor {executor!r}")
    load(engine)
    return view(executor, None), _pass(engine, executor)


def _pass(engine: Engine, executor: str) -> list[Dispatch]:
    """The pass of the executor's concurrency limit, if it was ever used (else nothing waits for it)."""
    from orchestrator import admission  # which reads this module's values under its locks

    name = limits.executor_gate(executor)
    with engine.connect() as conn:
        used = conn.execute(
            select(LimitRow.value).where(LimitRow.kind == CONCURRENCY, LimitRow.name == name)
        ).scalar()
    if used is None:
        return []
    current = limits.of_executor(executor).concurrency
    return admission.release(engine, [Gate(CONCURRENCY, name, current or int(used))])


def concurrency_under_lock(conn: Connection, gate: Gate) -> int | None:
    """The value of a concurrency limit now, read under its row's lock (held by the caller): for an
    executor's, its override as committed, else `ORCH_LIMITS`, else the code (None: no limit any
    more); any other limit's is its definition's, as in `gate`. The limit's row keeps the value used."""
    if not gate.name.startswith(PREFIX):
        assert isinstance(gate.limit, int)
        return gate.limit
    executor = gate.name[len(PREFIX) :]
    value, source = limits.sources(executor, read(conn, executor) or {})[CONCURRENCY]
    if source is None and not executors.is_registered(executor):
        # an executor whose module this process did not load: its code's limit is unknown here, so
        # the caller's value (its node's, or the one stored in the limit's row) stands
        value = gate.limit
    if not isinstance(value, int):
        return None
    if value != gate.limit:
        where = (LimitRow.kind == CONCURRENCY, LimitRow.name == gate.name)
        conn.execute(update(LimitRow).where(*where).values(value=str(value)))
    return value
