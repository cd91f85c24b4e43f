"""Result rows and the few statistics a noisy 2-core machine allows: medians, min/max, percentiles."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (`pct` in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


@dataclass(frozen=True)
class Target:
    """A pass/fail condition on a row: `ratio` (ours/raw) or `value` (ours' median) against `limit`."""

    on: str  # "ratio" or "value"
    op: str  # "<=" or ">="
    limit: float
    text: str

    def met(self, row: Row) -> bool | None:
        value = row.ratio if self.on == "ratio" else row.ours_median
        if value is None or math.isnan(value):
            return None
        return value <= self.limit if self.op == "<=" else value >= self.limit


@dataclass
class Row:
    """One measured quantity: each repetition's value for ours and (if any) for raw Celery."""

    scenario: str
    metric: str
    unit: str
    ours: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    target: Target | None = None
    note: str = ""

    @property
    def ours_median(self) -> float:
        return median(self.ours)

    @property
    def raw_median(self) -> float | None:
        return median(self.raw) if self.raw else None

    @property
    def ratio(self) -> float | None:
        raw = self.raw_median
        if raw is None or raw == 0 or math.isnan(raw):
            return None
        return self.ours_median / raw

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self)


def spread(values: Sequence[float], digits: int = 1) -> str:
    """`median (min-max)` for a table cell; a single value alone."""
    if not values:
        return "-"
    fmt = f"{{:.{digits}f}}"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"
