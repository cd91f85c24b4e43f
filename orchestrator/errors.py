"""One exception tree for the whole product; `api/errors.py` maps it to HTTP in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: the field it concerns, what is wrong, and a stable code."""

    field: str
    message: str
    code: str = "VALIDATION_ERROR"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "code": self.code}


class OrchestratorError(Exception):
    """Root of every error the product raises on purpose."""

    code = "ERROR"

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems: list[Problem] = list(problems or [])


class ValidationError(OrchestratorError):
    """A definition, an input or a request is not acceptable; `problems` lists every reason."""

    code = "VALIDATION_ERROR"


class NotFound(OrchestratorError):
    code = "NOT_FOUND"


class WorkflowNotFound(NotFound):
    code = "WORKFLOW_NOT_FOUND"


class Conflict(OrchestratorError):
    """The same key already names something different (e.g. a definition version with other content)."""

    code = "CONFLICT"


class InvalidTransition(OrchestratorError):
    """A state change that the transition table forbids, or that lost a compare-and-set race."""

    code = "INVALID_TRANSITION"


class StartTooEarly(Exception):
    """A claim rolled back: a rate's bucket of starts says the node may start `wait` seconds later."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"too early to start by {wait:.3f}s")
        self.wait = wait


class LostClaim(OrchestratorError):
    """A worker's write for an attempt that is no longer the node's current one (fencing)."""

    code = "LOST_CLAIM"


class TemplateError(OrchestratorError):
    """A template that does not parse, or a path in it that does not resolve."""

    code = "TEMPLATE_ERROR"


class ExecutorNotFound(OrchestratorError):
    code = "UNKNOWN_EXECUTOR"


@dataclass
class NodeFailure(Exception):
    """Raised by executors to fail an attempt. `retryable=False` fails the node at once."""

    message: str
    retryable: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


class Retryable(NodeFailure):
    """The attempt failed for a passing reason; the node is retried while it has retries left."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, True, details)


class Fatal(NodeFailure):
    """The attempt failed for a reason another attempt would not fix; the node fails now."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, False, details)


class StopRequested(Exception):
    """Raised by an executor that stops because `ctx.should_stop` asked it to (a pause, a worker
    shutting down, a cancel). Not a failure: the attempt is handed back (`queued` again, `attempt + 1`,
    no failure or retry counted) and the next attempt starts from the node's last checkpoint, so
    checkpoint before raising. Raised while no stop was asked, it fails the attempt like any error."""

    def __init__(self, message: str = "stopped on request") -> None:
        super().__init__(message)


class EgressDenied(OrchestratorError):
    """A connection the egress policy forbids (`orchestrator/egress.py`). Another attempt would be
    denied as well: it is never retried."""

    code = "EGRESS_DENIED"


class NotStorable(OrchestratorError):
    """A node's output that the store cannot hold as JSON (`orchestrator/storable.py`)."""

    code = "OUTPUT_NOT_STORABLE"


class CheckpointNotStorable(NotStorable):
    """A checkpoint that the store cannot hold as JSON."""

    code = "CHECKPOINT_NOT_STORABLE"
