"""The sweep's single-runner lock: a second sweep skips, a schedule pass on the same beat tick does
not cost a sweep (the sweep waits it out), and a schedule pass skips while a sweep acts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from orchestrator.schedule_firing import FireReport
from tests.support.services import wait_for
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


def _held(db, name: str) -> bool:
    with db.connect() as conn:
        return conn.execute(text("SELECT IS_USED_LOCK(:n)"), {"n": name}).scalar() is not None


def test_a_sweep_waits_out_a_schedule_pass_instead_of_skipping(db, hold_lock):
    release = hold_lock(beat.SWEEP_LOCK)  # a schedule pass, sent on the same beat tick
    with ThreadPoolExecutor(1) as pool:
        sweep = pool.submit(beat.recover)
        # the sweep holds its own lock while it waits for the shared one (up to 5 s here)
        wait_for(lambda: _held(db, beat.SWEEPER_LOCK), 10, "the sweep to wait for the lock")
        release()
        assert "handedBack" in sweep.result(timeout=30)


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
