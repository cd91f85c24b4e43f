"""Define a workflow, start it, wait for it and read what it did, from Python.

Against a running API (`make run`; ORCH_API_URL and ORCH_API_TOKEN say where and how):
    .venv/bin/python examples/client_example.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from orchestrator.client import Client, WorkflowFailed

WORKFLOWS = Path(__file__).resolve().parent / "workflows"


def main() -> int:
    with Client() as client:  # or Client("http://127.0.0.1:8080", token="...")
        definition = client.definitions.put(WORKFLOWS / "data-sync-pipeline.json")
        print(f"stored {definition.name} {definition.version}")

        run = client.submit(
            "data-sync-pipeline",
            input={"sourceSystem": "crm", "targetSystem": "warehouse", "batchSize": 500},
            tags={"team": "data"},
        )
        print(f"started {run.id}")
        try:
            final = run.wait(timeout=300, raise_on_failure=True)
        except WorkflowFailed as failure:
            print(f"failed: {failure.code} at node {failure.node_id}: {failure.message}")
            return 1
        print(f"{final.status} in {final.execution_time_ms} ms")

        for node in run.nodes():
            print(f"  {node.node_id}: {node.status} (attempt {node.attempt}) -> {node.output}")
        for line in run.logs(level="info"):
            print(f"  {line.timestamp:%H:%M:%S} {line.level:<7} [{line.node_id or '-'}] {line.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
