"""The sweep's way through due rows: each on its own, full batches drained, no row twice."""

from __future__ import annotations

import logging

from orchestrator.due_rows import drain


class Table:
    """Due rows as a store holds them: a fetch returns the first `batch` still due, in order."""

    def __init__(self, rows: list[int], batch: int) -> None:
        self.due, self.batch, self.fetches = list(rows), batch, 0

    def fetch(self) -> list[int]:
        self.fetches += 1
        return self.due[: self.batch]

    def done(self, row: int) -> int:
        self.due.remove(row)
        return row * 10


def test_full_batches_are_drained_in_one_pass() -> None:
    table = Table(list(range(7)), batch=3)
    assert drain(table.fetch, table.done, lambda r: r, 3, "row") == [r * 10 for r in range(7)]
    assert table.due == [] and table.fetches == 3  # 3 + 3 + a short 1


def test_a_row_that_fails_every_time_holds_back_no_other_and_is_tried_once(caplog) -> None:
    table = Table(list(range(5)), batch=2)
    tried: list[int] = []

    def act(row: int) -> int:
        tried.append(row)
        if row == 0:
            raise RuntimeError("this row cannot be handled")
        return table.done(row)

    with caplog.at_level(logging.ERROR):
        results = drain(table.fetch, act, lambda r: r, 2, "sleep node row")
    assert results == [10, 20, 30, 40]
    assert table.due == [0] and tried.count(0) == 1
    assert "sleep node row 0 failed" in caplog.text


def test_rows_acted_on_but_still_due_end_the_pass() -> None:
    table = Table(list(range(4)), batch=2)
    results = drain(table.fetch, lambda row: None, lambda r: r, 2, "row")  # moves nothing on
    assert results == [] and table.fetches == 2  # the second fetch brings nothing new


def test_the_budget_ends_a_pass_that_would_go_on() -> None:
    table = Table(list(range(100)), batch=1)
    drain(table.fetch, table.done, lambda r: r, 1, "row", budget_s=0.0)
    assert table.fetches == 1 and len(table.due) == 99
