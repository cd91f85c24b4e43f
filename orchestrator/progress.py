"""`submit --watch`: a live progress bar per instance, node by node, until every instance ends.

The bar counts what the status's `progress` counts: nodes that reached an outcome of their own
(completed, failed, or skipped by their `when`), and one by one the items of its maps (the status's
`totalItems` and `finishedItems`: its total grows as a map makes its items). Nodes a failure left
unreachable are `skipped` too, but they did not finish, so a failed instance's bar stops where the
instance really got to instead of filling up.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm

from orchestrator.client import Client, Run, Status

# the `skipReason`s of nodes that a failure elsewhere skipped (GET .../nodes), as opposed to their `when`
SKIPPED_BY_FAILURE = ("upstream failed", "instance failed")


def watch(client: Client, instance_ids: list[str], poll_s: float = 0.3) -> dict[str, str]:
    """Draw one bar per instance (finished nodes of total) until all have ended; returns each one's
    final status and prints it, with the error of a failed one. Raises the client's errors."""
    # many instances: poll each less often, so the API sees a bounded rate from one watcher
    interval = max(poll_s, 0.02 * len(instance_ids))
    runs = {i: client.run(i) for i in instance_ids}
    statuses = {i: run.status() for i, run in runs.items()}
    bars = {
        instance_id: tqdm(
            total=status.total_nodes + status.total_items,
            unit="node",
            desc=instance_id[:8],
            position=position,
            file=sys.stderr,
            leave=True,
        )
        for position, (instance_id, status) in enumerate(statuses.items())
    }
    # asked once per failed instance (a failed instance changes no more), never while it runs
    unreachable: dict[str, set[str]] = {}
    try:
        while True:
            for instance_id, status in statuses.items():
                if status.status == "failed" and instance_id not in unreachable:
                    unreachable[instance_id] = _skipped_by_failure(runs[instance_id], status)
                _draw(bars[instance_id], status, unreachable.get(instance_id, set()))
            open_ids = [i for i, s in statuses.items() if not s.finished]
            if not open_ids:
                break
            time.sleep(interval)
            for instance_id in open_ids:
                statuses[instance_id] = runs[instance_id].status()
    finally:
        for bar in bars.values():
            bar.close()
    for instance_id, status in statuses.items():
        reason = f": {status.error.message}" if status.error and status.error.message else ""
        print(f"{instance_id} {status.status}{reason}", flush=True)
    return {instance_id: status.status for instance_id, status in statuses.items()}


def _skipped_by_failure(run: Run, status: Status) -> set[str]:
    """The nodes of a failed instance that its failure skipped. (A running instance's skipped nodes
    were all skipped by their `when`: a failure ends its instance at once.)"""
    if not status.skipped_nodes:
        return set()
    return {n.node_id for n in run.nodes() if n.skip_reason in SKIPPED_BY_FAILURE}


def finished_count(status: Status, skipped_by_failure: set[str]) -> int:
    """How many nodes and map items reached an outcome of their own: the rule of the status's
    `progress`."""
    skipped = [n for n in status.skipped_nodes if n not in skipped_by_failure]
    return len(status.completed_nodes) + len(status.failed_nodes) + len(skipped) + status.finished_items


def _draw(bar: Any, status: Status, skipped_by_failure: set[str]) -> None:
    """Move the bar to the number of finished nodes and items, naming what runs now."""
    total = status.total_nodes + status.total_items
    if total != bar.total:  # a map has made its items
        bar.total = total
    done = finished_count(status, skipped_by_failure)
    if done != bar.n:
        bar.update(done - bar.n)
    running = ",".join(status.current_nodes)
    waiting = ",".join(status.waiting_nodes)
    shown = " ".join(part for part in (running[:40], f"waiting {waiting[:40]}" if waiting else "") if part)
    bar.set_postfix_str(f"{status.status}{' ' + shown if shown else ''}", refresh=True)
