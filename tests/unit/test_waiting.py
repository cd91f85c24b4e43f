"""`waitingFor`: a queued node of a running instance waits for a worker, or for its retry delay;
any other node waits for nothing a worker could give it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from orchestrator.waiting import RETRY_DELAY, WORKER, waiting_for

NOW = datetime(2026, 12, 2, 12, 0, 0)


@pytest.mark.parametrize(
    ("node", "not_before", "instance", "expected"),
    [
        ("queued", None, "running", WORKER),
        ("queued", NOW - timedelta(seconds=1), "running", WORKER),  # a retry that is due
        ("queued", NOW, "running", WORKER),
        ("queued", NOW + timedelta(seconds=30), "running", RETRY_DELAY),
        ("queued", None, "paused", None),  # the resume sends it again; until then no worker takes it
        ("queued", None, "cancelled", None),
        ("pending", None, "running", None),  # its dependencies are not done
        ("running", None, "running", None),
        ("completed", None, "completed", None),
    ],
)
def test_waiting_for(node: str, not_before: datetime | None, instance: str, expected: str | None) -> None:
    assert waiting_for(node, not_before, instance, NOW) == expected
