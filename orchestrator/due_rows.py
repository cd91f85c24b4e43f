"""How the sweep works through rows that came due (sleeps to fire, waits past their timeout, delayed
starts): each row on its own, so one that fails every time does not hold back those after it, and
batch after batch while batches come back full, so thousands due at one moment (5,000 runs at 09:00)
are not spread over many sweep intervals. A row is handled once per pass (one it could not move on
comes back first in every batch), and a pass stops after a time budget."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

log = logging.getLogger(__name__)

Row = TypeVar("Row")
Result = TypeVar("Result")

BUDGET_S = 10.0  # one action's share of a sweep; what is left is due for the next sweep


def drain(
    fetch: Callable[[], Sequence[Row]],
    act: Callable[[Row], Result | None],
    key: Callable[[Row], Hashable],
    batch: int,
    what: str,
    budget_s: float = BUDGET_S,
) -> list[Result]:
    """`act` on each row `fetch` returns (at most `batch` at a time) once, until a batch is short or
    holds no row not seen before, or the budget is spent; the results that are not None."""
    results: list[Result] = []
    seen: set[Hashable] = set()
    deadline = time.monotonic() + budget_s
    while True:
        rows = fetch()
        fresh = [row for row in rows if key(row) not in seen]
        for row in fresh:
            seen.add(key(row))
            try:
                result = act(row)
            except Exception:
                log.exception("%s %s failed; the others go on (it stays due)", what, key(row))
                continue
            if result is not None:
                results.append(result)
        if len(rows) < batch or not fresh or time.monotonic() > deadline:
            return results
