"""The sweep's single-runner lock: a second sweep skips, a schedule pass on the same beat tick does
not cost a sweep (the sweep waits it out), and a schedule pass skips while a sweep acts."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import text

from orchestrator.schedule_firing import FireReport
from workers import beat


@pytest.fixture
def hold_lock(db):
    """Hold a named lock on a connection of its own, as another process would; the returned function
    releases it (and returns once it is released)."""
    releases: list[Callable[[], None]] = []

    def hold(name: str) -> Callable[[], None]:
        release, taken = threading.Event(), threading.Event()

        def holder() -> None:
            with db.connect() as conn:
                assert conn.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": name}).scalar() == 1
                taken.set()
                release.wait(30)
                conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": name})

        thread = threading.Thread(target=holder, daemon=True)
        thread.start()
        assert taken.wait(10)

        def released() -> None:
            release.set()
            thread.join(10)

        releases.append(released)
        return released

    yield hold
    for released in releases:
        released()


def test_a_sweep_waits_out_a_schedule_pass_instead_of_skipping(hold_lock):
    release = hold_lock(beat.SWEEP_LOCK)  # a schedule pass, sent on the same beat tick
    threading.Timer(0.3, release).start()
    assert "handedBack" in beat.recover()


def test_a_second_sweep_skips(hold_lock):
    hold_lock(beat.SWEEPER_LOCK)
    assert beat.recover() == {"skipped": 1}


def test_a_schedule_pass_skips_while_a_sweep_holds_the_lock(hold_lock, monkeypatch):
    passes: list[object] = []

    def fire_due(engine: object) -> FireReport:
        passes.append(engine)
        return FireReport()

    monkeypatch.setattr(beat.schedule_firing, "fire_due", fire_due)
    release = hold_lock(beat.SWEEP_LOCK)
    assert beat.fire_schedules() is None
    assert passes == []
    release()
    beat.fire_schedules()
    assert len(passes) == 1
