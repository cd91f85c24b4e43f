"""`submit --watch`: a live progress bar of an instance, node by node, until it ends."""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm

FINISHED = ("completed", "failed", "cancelled")


def watch(client: Any, instance_id: str, poll_s: float = 0.3) -> str:
    """Poll the instance's status and draw its progress; returns the final status."""
    status = client.call("GET", f"/api/v1/instances/{instance_id}/status")
    seen: set[str] = set()
    with tqdm(total=status["totalNodes"], unit="node", desc=instance_id[:8], file=sys.stderr) as bar:
        while True:
            done = status["completedNodes"] + status["skippedNodes"] + status["failedNodes"]
            for node in done:
                if node not in seen:
                    seen.add(node)
                    bar.update(1)
            bar.set_postfix_str(f"{status['status']} {','.join(status['currentNodes'])[:40]}")
            if status["status"] in FINISHED:
                break
            time.sleep(poll_s)
            status = client.call("GET", f"/api/v1/instances/{instance_id}/status")
    final = status["status"]
    print(f"{instance_id} {final}" + (f": {status['error'].get('message')}" if status.get("error") else ""))
    return str(final)
