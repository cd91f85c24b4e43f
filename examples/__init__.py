"""Example executors for the seed's two workflows (`user-onboarding`, `data-sync-pipeline`).

Load them with `ORCH_EXECUTOR_MODULES=examples.executors`; the workflow definitions and sample inputs
are in `WORKFLOWS_DIR`.
"""

from __future__ import annotations

from pathlib import Path

WORKFLOWS_DIR = Path(__file__).resolve().parent / "workflows"
