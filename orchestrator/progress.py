"""`submit --watch`: a live progress bar per instance, node by node, until every instance ends."""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm

FINISHED = ("completed", "failed", "cancelled")


def watch(client: Any, instance_ids: list[str], poll_s: float = 0.3) -> dict[str, str]:
    """Draw one bar per instance (finished nodes of total) until all have ended; returns each one's
    final status and prints it, with the error of a failed one. Raises the client's ApiError."""
    # many instances: poll each less often, so the API sees a bounded rate from one watcher
    interval = max(poll_s, 0.02 * len(instance_ids))
    statuses = {i: client.call("GET", f"/api/v1/instances/{i}/status") for i in instance_ids}
    bars = {
        instance_id: tqdm(
            total=status["totalNodes"],
            unit="node",
            desc=instance_id[:8],
            position=position,
            file=sys.stderr,
            leave=True,
        )
        for position, (instance_id, status) in enumerate(statuses.items())
    }
    seen: dict[str, set[str]] = {i: set() for i in instance_ids}
    try:
        while True:
            for instance_id, status in statuses.items():
                _draw(bars[instance_id], seen[instance_id], status)
            open_ids = [i for i, s in statuses.items() if s["status"] not in FINISHED]
            if not open_ids:
                break
            time.sleep(interval)
            for instance_id in open_ids:
                statuses[instance_id] = client.call("GET", f"/api/v1/instances/{instance_id}/status")
    finally:
        for bar in bars.values():
            bar.close()
    for instance_id, status in statuses.items():
        error = status.get("error") or {}
        reason = f": {error.get('message')}" if error.get("message") else ""
        print(f"{instance_id} {status['status']}{reason}", flush=True)
    return {instance_id: str(status["status"]) for instance_id, status in statuses.items()}


def _draw(bar: Any, seen: set[str], status: dict[str, Any]) -> None:
    """Advance the bar by each node that finished since the last look, naming what runs now."""
    for node in (*status["completedNodes"], *status["skippedNodes"], *status["failedNodes"]):
        if node not in seen:
            seen.add(node)
            bar.update(1)
    running = ",".join(status["currentNodes"])
    bar.set_postfix_str(f"{status['status']}{' ' + running[:40] if running else ''}", refresh=True)
