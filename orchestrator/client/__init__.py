"""A Python client of the orchestrator's HTTP API (sync, on `requests`).

```python
from orchestrator.client import Client

with Client("http://127.0.0.1:8080", token="...") as client:
    client.definitions.put("examples/workflows/data-sync-pipeline.json")
    run = client.submit("data-sync-pipeline", input={"sourceSystem": "crm", "targetSystem": "dw"})
    final = run.wait(timeout=300, raise_on_failure=True)
```

It imports neither Flask nor Celery (nor the orchestrator's database layer): a service that only
starts and follows workflows needs `requests` and this package. See docs/python-client.md.
"""

from __future__ import annotations

from orchestrator.client.client import Client, Definitions, Instances
from orchestrator.client.errors import (
    ApiError,
    ApiUnreachable,
    BadRequest,
    ClientError,
    Conflict,
    NotFound,
    ServerError,
    TooManyStreams,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
    WorkflowCancelled,
    WorkflowEnded,
    WorkflowFailed,
)
from orchestrator.client.limits import ExecutorLimits, Limit, Limits
from orchestrator.client.models import (
    BatchResult,
    Definition,
    DefinitionSummary,
    ErrorInfo,
    Event,
    Instance,
    InstanceSummary,
    LogLine,
    MapItem,
    NodeExecution,
    SignalDelivery,
    Status,
)
from orchestrator.client.runs import Run
from orchestrator.client.schedules import Schedule, Schedules

__all__ = [
    "ApiError",
    "ApiUnreachable",
    "BadRequest",
    "BatchResult",
    "Client",
    "ClientError",
    "Conflict",
    "Definition",
    "DefinitionSummary",
    "Definitions",
    "ErrorInfo",
    "ExecutorLimits",
    "Event",
    "Instance",
    "InstanceSummary",
    "Instances",
    "Limit",
    "Limits",
    "LogLine",
    "MapItem",
    "NodeExecution",
    "NotFound",
    "Run",
    "Schedule",
    "Schedules",
    "ServerError",
    "SignalDelivery",
    "Status",
    "TooManyStreams",
    "Unauthorized",
    "ValidationFailed",
    "WaitTimeout",
    "WorkflowCancelled",
    "WorkflowEnded",
    "WorkflowFailed",
]
