"""The `orchestrator` command: the composition root that wires the core (`orchestrator/`) to its
edges (`api/`, `workers/`) and starts their processes, including `orchestrator dev`.

It lives outside `orchestrator/` so that the core's rule (it imports neither Flask nor Celery, nor
`api/` or `workers/`) holds without exception.
"""
