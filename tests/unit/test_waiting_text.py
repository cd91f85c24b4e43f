"""What a `waiting` node waits for, in the read models and in `orchestrator status`."""

from __future__ import annotations

from datetime import datetime

from orchestrator import status_text, waiting

NOW = datetime(2026, 1, 1, 12, 0)
WAKE = datetime(2026, 1, 1, 13, 0)


def test_a_waiting_wait_names_its_signal_and_timeout_and_a_sleep_its_wake_up() -> None:
    assert waiting.waiting_for("waiting", None, "running", NOW, signal="approval") == {
        "signal": "approval",
        "until": None,
    }
    sleeping = waiting.waiting_for("waiting", None, "paused", NOW, wake_at=WAKE)
    assert sleeping == {"until": "2026-01-01T13:00:00Z"}
    assert waiting.waiting_for("running", None, "running", NOW, wake_at=WAKE, signal="approval") is None


def test_the_status_summary_lists_waiting_nodes() -> None:
    status = {"id": "i", "status": "running", "progress": 0, "totalNodes": 2, "waitingNodes": ["approve"]}
    assert "waiting   approve" in status_text.summary(status)
