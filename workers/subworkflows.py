"""The Celery side of sub-workflow nodes (their core is `orchestrator/nodes/subworkflow.py`): what an
instance's end sends for them. The tasks these messages run are in `workers/lifecycle_tasks.py`."""

from __future__ import annotations

from orchestrator.outcomes import Finished
from workers.app import CONTROL_QUEUE, app


def after_end(finished: Finished) -> None:
    """Report a child's end to its parent node; cancel the open children of an instance that failed
    or was cancelled (nobody waits for them any more)."""
    if finished.parent_instance_id is not None:
        app.send_task("orchestrator.child_finished", args=(finished.instance_id,), queue=CONTROL_QUEUE)
    if finished.status in ("cancelled", "failed"):
        app.send_task("orchestrator.cancel_children", args=(finished.instance_id,), queue=CONTROL_QUEUE)
