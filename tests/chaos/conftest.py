"""Chaos tests: a summary of every recovery they measured, printed at the end of the run."""

from __future__ import annotations

from typing import Any

from tests.chaos import helpers


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = helpers.summary_lines()
    if lines:
        terminalreporter.section("chaos: recovery times (min / median / max)")
        for line in lines:
            terminalreporter.write_line(line)
