"""Limits as declared: what a node is held to (its `Gate`s), pure logic without I/O.

Three sources, one shape:
- an executor's `@executor("crm.push", concurrency=4, rate="100/m")`, overridden per deployment by
  `ORCH_LIMITS` (JSON: `{"crm.push": {"concurrency": 2, "rate": "10/s"}}`; `null` removes one), and
  both field by field by the API's (`PUT /api/v1/limits/crm.push`, kept here as last read:
  `limit_overrides.py`);
- a node's own `"concurrency": 2` and `"rate": "10/s"` in its definition;
- a definition's `"concurrency": {"key": "${input.customerId}", "limit": 1}`: instances, not nodes
  (`admission.py` keeps such an instance pending).

A node's gates are worked out from its executor and its definition whenever its message is about to
be sent (`outcomes.dispatch_for`): a node of an executor and a node without limits gets none, and the
node path then costs nothing more. The accounting itself (who holds a slot, who waits, tokens) is
`admission.py`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from orchestrator import templates
from orchestrator.errors import TemplateError
from orchestrator.settings import Settings

CONCURRENCY = "concurrency"
RATE = "rate"

_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)\s*")
_UNIT_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
MAX_LIMIT = 1_000_000
MAX_PERIOD_S = 86_400  # a rate's period: at most a day, so every wait it implies fits a timedelta
MAX_RATE_TEXT = 32  # the column that keeps a limit's value
# tokens a rate books ahead (`rate_horizon.py`): the nodes beyond wait as rows, not as ETA messages
HORIZON_TOKENS = 5
MAX_NAME_LENGTH = 255  # the column of a limit's name, of a node's `limit_wait` and of an instance's key


@dataclass(frozen=True)
class Rate:
    """`count` starts per `per_s` seconds, spread evenly: one token every `interval` seconds, and at
    most `burst` at once after a quiet spell."""

    text: str
    count: int
    per_s: float
    burst: int = 1

    @property
    def interval(self) -> float:
        return self.per_s / self.count


def parse_rate(value: Any) -> Rate:
    """A rate such as `"100/m"`, `"10/s"`, `"5/2s"`; raises ValueError saying what is expected."""
    if not isinstance(value, str):
        raise ValueError('must be a rate such as "10/s", "100/m" or "1000/h"')
    if len(value.strip()) > MAX_RATE_TEXT:
        raise ValueError(f'must be at most {MAX_RATE_TEXT} characters, such as "10/s"')
    match = _RATE.fullmatch(value)
    if match is None:
        raise ValueError(f'{value!r} is not a rate such as "10/s", "100/m" or "1000/h"')
    count, times, unit = int(match.group(1)), int(match.group(2) or 1), match.group(3)
    if count < 1 or times < 1:
        raise ValueError(f"{value!r}: the count and the period must be at least 1")
    if count > MAX_LIMIT:
        raise ValueError(f"{value!r}: the count must be at most {MAX_LIMIT}")
    per_s = times * _UNIT_SECONDS[unit]
    if per_s > MAX_PERIOD_S:
        raise ValueError(f"{value!r}: the period must be at most a day ({MAX_PERIOD_S}s, 24h)")
    return Rate(value.strip(), count, float(per_s))


def check_concurrency(value: Any) -> int:
    """A concurrency limit: an integer of at least 1; raises ValueError."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("must be an integer of at least 1")
    if value < 1 or value > MAX_LIMIT:
        got = str(value) if abs(value) < 10**12 else f"a number of {len(str(abs(value)))} digits"
        raise ValueError(f"must be between 1 and {MAX_LIMIT}, got {got}")
    return value


@dataclass(frozen=True)
class Gate:
    """One limit a node is held to: `name` (`executor:crm.push`, `node:<workflow>/<node>`), its kind
    (concurrency or rate) and its value (a count, or a `Rate`)."""

    kind: str
    name: str
    limit: int | Rate

    @property
    def shown(self) -> str | int:
        return self.limit.text if isinstance(self.limit, Rate) else self.limit


@dataclass(frozen=True)
class Declared:
    concurrency: int | None = None
    rate: Rate | None = None

    def gates(self, name: str) -> tuple[Gate, ...]:
        found: list[Gate] = []
        if self.concurrency is not None:
            found.append(Gate(CONCURRENCY, name, self.concurrency))
        if self.rate is not None:
            found.append(Gate(RATE, name, self.rate))
        return tuple(found)


@dataclass(frozen=True)
class KeyLimit:
    """A definition's `concurrency`: at most `limit` running instances per value of `key`."""

    key: str
    limit: int


Override = dict[str, "int | Rate | None"]  # the fields an override gives (None: that kind removed)
# declared by `@executor(...)`, and the deployment's `ORCH_LIMITS` read once on first use
_declared: dict[str, Declared] = {}
_overrides: dict[str, Override] | None = None
# the API's overrides as this process last read them (`limit_overrides.py` keeps the copy current:
# a worker's thread; the API process reads them again before a request when stale)
_api: dict[str, Override] = {}
SOURCES = ("api", "env", "code")  # where an executor's value comes from, the first that sets it


def check_executor_name(executor: str) -> None:
    """An executor with limits: its limit's name (`executor:<name>`) must fit its column."""
    if len(executor_gate(executor)) > MAX_NAME_LENGTH:
        longest = MAX_NAME_LENGTH - len(executor_gate(""))
        raise ValueError(f"an executor with limits needs a name of at most {longest} characters")


def executor_gate(executor: str) -> str:
    return f"executor:{executor}"


def node_gate(workflow: str, node_id: str) -> str:
    """The name of a node's own limits (a map's items: `node_id` is `<map>[]`)."""
    return f"node:{workflow}/{node_id}"


def declare(executor: str, concurrency: int | None, rate: str | None) -> None:
    """Record an executor's limits (`@executor`); raises ValueError for a bad one."""
    if concurrency is not None or rate is not None:
        check_executor_name(executor)
    value = Declared(
        None if concurrency is None else check_concurrency(concurrency),
        None if rate is None else parse_rate(rate),
    )
    if value == Declared():
        _declared.pop(executor, None)
    else:
        _declared[executor] = value


def parse_overrides(text: str) -> dict[str, Override]:
    """`ORCH_LIMITS`: `{"<executor>": {"concurrency": N | null, "rate": "10/s" | null}}`. Raises
    ValueError naming the executor and field that is not valid."""
    try:
        body = json.loads(text)
    except ValueError:
        raise ValueError('ORCH_LIMITS must be JSON such as {"crm.push": {"concurrency": 4}}') from None
    if not isinstance(body, dict):
        raise ValueError('ORCH_LIMITS must be a JSON object such as {"crm.push": {"concurrency": 4}}')
    found: dict[str, Override] = {}
    for name, fields in body.items():
        if not isinstance(fields, dict) or set(fields) - {CONCURRENCY, RATE}:
            raise ValueError(f"ORCH_LIMITS[{name!r}] must be an object with concurrency and/or rate")
        entry: Override = {}
        try:
            check_executor_name(name)
            if CONCURRENCY in fields:
                value = fields[CONCURRENCY]
                entry[CONCURRENCY] = None if value is None else check_concurrency(value)
            if RATE in fields:
                entry[RATE] = None if fields[RATE] is None else parse_rate(fields[RATE])
        except ValueError as exc:
            raise ValueError(f"ORCH_LIMITS[{name!r}]: {exc}") from None
        found[name] = entry
    return found


def set_overrides(overrides: dict[str, Override] | None) -> None:
    """Replace the deployment's overrides (None: read `ORCH_LIMITS` again on next use)."""
    global _overrides
    _overrides = overrides


def _current_overrides() -> dict[str, Override]:
    global _overrides
    if _overrides is None:
        text = Settings.from_env().limits.strip()
        _overrides = parse_overrides(text) if text else {}
    return _overrides


def set_api_overrides(overrides: dict[str, Override]) -> None:
    """The API's overrides as just read (`limit_overrides.load`)."""
    global _api
    _api = overrides


def sources(executor: str, api: Override | None = None) -> dict[str, tuple[int | Rate | None, str | None]]:
    """Each field of an executor's limits: its value and where it comes from, the first of the API's
    override (`api`, else the copy last read), `ORCH_LIMITS` and the code that sets it (a None
    value with a source: removed there; None, None: no limit of that kind anywhere)."""
    declared = _declared.get(executor, Declared())
    env = _current_overrides().get(executor, {})
    given = _api.get(executor, {}) if api is None else api
    found: dict[str, tuple[int | Rate | None, str | None]] = {}
    for field, coded in ((CONCURRENCY, declared.concurrency), (RATE, declared.rate)):
        if field in given:
            found[field] = (given[field], "api")
        elif field in env:
            found[field] = (env[field], "env")
        elif coded is not None:
            found[field] = (coded, "code")
        else:
            found[field] = (None, None)
    return found


def of_executor(executor: str, api: Override | None = None) -> Declared:
    """An executor's limits: per field, the API's override, else `ORCH_LIMITS`, else the decorator's
    (`api`: the API's override as just read; by default the copy last read)."""
    found = sources(executor, api)
    concurrency, rate = found[CONCURRENCY][0], found[RATE][0]
    return Declared(
        concurrency if isinstance(concurrency, int) else None, rate if isinstance(rate, Rate) else None
    )


def any_declared() -> bool:
    return bool(_declared) or bool(_current_overrides()) or bool(_api)


def executor_limits() -> dict[str, Declared]:
    """Every executor with a limit (declared or overridden), for the `/limits` listing."""
    names = set(_declared) | set(_current_overrides()) | set(_api)
    return {name: found for name in sorted(names) if (found := of_executor(name)) != Declared()}


def node_gates(workflow: str, node_id: str, executor: str | None, own: Declared | None) -> tuple[Gate, ...]:
    """The gates of a node: its executor's, then its own (`node:<workflow>/<node>`; a map's items,
    `<map>[i]`, under `node:<workflow>/<map>[]`, with the limits of the map's item body)."""
    found: tuple[Gate, ...] = ()
    if executor is not None and any_declared():
        found = of_executor(executor).gates(executor_gate(executor))
    if own is not None and own != Declared():
        map_id = node_id.split("[", 1)[0]
        # a map's items count apart from their map node: `node:<workflow>/<map>[]`
        found += own.gates(node_gate(workflow, f"{map_id}[]" if map_id != node_id else node_id))
    return found


def parse_node_limits(body: dict[str, Any]) -> tuple[Declared | None, list[tuple[str, str]]]:
    """A node body's `concurrency` and `rate`, and the (field, message) of each that is not valid."""
    problems: list[tuple[str, str]] = []
    concurrency = rate = None
    if body.get(CONCURRENCY) is not None:
        try:
            concurrency = check_concurrency(body[CONCURRENCY])
        except ValueError as exc:
            problems.append((CONCURRENCY, str(exc)))
    if body.get(RATE) is not None:
        try:
            rate = parse_rate(body[RATE])
        except ValueError as exc:
            problems.append((RATE, str(exc)))
    found = Declared(concurrency, rate)
    return (None if found == Declared() else found), problems


def parse_key_limit(value: Any) -> tuple[KeyLimit | None, list[tuple[str, str]]]:
    """A definition's `concurrency` `{"key": "${input.x}", "limit": N}`, and the (field, message) of
    each problem (fields under `concurrency`)."""
    if value is None:
        return None, []
    if not isinstance(value, dict):
        return None, [("concurrency", 'must be an object {"key": "${input.customerId}", "limit": 1}')]
    problems: list[tuple[str, str]] = []
    key = value.get("key")
    if not isinstance(key, str) or not key:
        problems.append(("concurrency.key", 'is required: a template such as "${input.customerId}"'))
    else:
        try:
            parsed = templates.parse(key)
        except TemplateError as exc:
            problems.append(("concurrency.key", exc.message))
        else:
            if not parsed.is_template:
                problems.append(("concurrency.key", "must hold a template such as ${input.customerId}"))
            elif parsed.roots - {"input", "instance"}:
                problems.append(("concurrency.key", "may only read input and instance"))
    limit = None
    try:
        limit = check_concurrency(value.get("limit"))
    except ValueError as exc:
        problems.append(("concurrency.limit", str(exc)))
    if problems or limit is None or not isinstance(key, str):
        return None, problems
    return KeyLimit(key, limit), []


def key_name(workflow: str, key: KeyLimit, scope: dict[str, Any]) -> str:
    """`key:<workflow>:<value>` for an instance whose input is in `scope`; raises TemplateError when
    the key does not render."""
    value = templates.to_text(templates.parse(key.key).render(scope))
    prefix = f"key:{workflow}:"
    return prefix + value[: MAX_NAME_LENGTH - len(prefix)]  # a longer value shares its prefix's slots


def rate_delay(tat: float | None, now: float, rate: Rate) -> tuple[float, float]:
    """A token reserved at `now` (epoch s) from a bucket whose theoretical arrival time is `tat`
    (GCRA): (seconds to wait for it, the new theoretical arrival time)."""
    tolerance = (rate.burst - 1) * rate.interval
    start = now if tat is None else max(now, tat - tolerance)
    new_tat = max(start, tat or 0.0) + rate.interval
    return max(0.0, start - now), new_tat


def bucket_used(tat: float | None, now: float, rate: Rate) -> int:
    """Tokens of the burst taken and not yet back (reserved starts still ahead count too)."""
    if tat is None or tat <= now:
        return 0
    return math.ceil((tat - now) / rate.interval - 1e-9)


def start_delay(tat: float | None, now: float, rate: Rate) -> float:
    """Seconds until a start conforms to a bucket of starts whose theoretical arrival time is `tat`,
    with half an interval of slack for the jitter of deliveries (0: it may start now)."""
    if tat is None:
        return 0.0
    return max(0.0, tat - rate.interval / 2 - now)


def start_taken(tat: float | None, now: float, rate: Rate) -> float:
    """The bucket of starts after a start at `now`. A start up to half an interval late keeps its
    turn (the next one is due an interval after it was), so delivery jitter does not slow the rate;
    within any window of W seconds there are still at most W x rate + 1 starts."""
    slack = rate.interval / 2
    return max(tat if tat is not None else now - slack, now - slack) + rate.interval
