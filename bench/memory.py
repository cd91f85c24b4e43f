"""Peak resident memory of process trees (a process and all its children), sampled in a thread.

Uses psutil when installed (the `bench` extra), else reads /proc."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

try:
    import psutil
except ImportError:  # the /proc fallback below (Linux)
    psutil = None


def proc_children(pid: int) -> list[int]:
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(c) for c in children.read_text().split()]
        except OSError:
            continue
    return found


def _proc_rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> int:
    """Bytes resident in `pid` and its descendants now (0 when it is gone)."""
    if psutil is None:
        pids, total = [pid], 0
        while pids:
            current = pids.pop()
            total += _proc_rss(current)
            pids += proc_children(current)
        return total
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


class PeakRss:
    """Samples named process trees every `interval` seconds and keeps each name's peak (bytes).

    `targets` is called at every sample, so processes started later (a replacement worker) count too.
    """

    def __init__(self, targets: Callable[[], dict[str, list[int]]], interval: float = 0.25) -> None:
        self._targets = targets
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)
        self.peaks: dict[str, int] = {}

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sample(self) -> None:
        for name, pids in self._targets().items():
            # several trees under one name (two workers): the largest single tree is the peak
            value = max((tree_rss(pid) for pid in pids), default=0)
            self.peaks[name] = max(self.peaks.get(name, 0), value)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()
