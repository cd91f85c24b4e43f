"""The client's exceptions, from one root (`ClientError`): callers see exceptions, not error values.

An `ApiError` is the API's own answer, with its HTTP status and the `{code, message, details}` of
its JSON error body; a subclass per status a caller may want to catch on its own. `ApiUnreachable`
is no answer at all (refused, timed out, a dropped connection). `WorkflowFailed` and
`WorkflowCancelled` are how `Run.wait(raise_on_failure=True)` reports an instance that did not
complete.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.client.models import Status


class ClientError(Exception):
    """The root of every exception the client raises."""


class ApiUnreachable(ClientError, ConnectionError):
    """The API did not answer: nothing listens, the host is unknown, or the request timed out."""

    code = "UNREACHABLE"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(ClientError):
    """The API refused a request: `status` (HTTP), `code` (`NOT_FOUND`, `VALIDATION_ERROR`...),
    `message`, and `details`, one `{field, message, code}` per problem."""

    def __init__(
        self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details or [])

    @property
    def fields(self) -> dict[str, str]:
        """field -> message of each detail (the last one for a field named twice)."""
        return {str(d.get("field")): str(d.get("message")) for d in self.details}

    def __str__(self) -> str:
        lines = [f"{self.status} {self.code}: {self.message}"]
        lines += [f"  {d.get('field')}: {d.get('message')} ({d.get('code')})" for d in self.details]
        return "\n".join(lines)


class BadRequest(ApiError):
    """400: a body that is not JSON, or none where one is required."""


class Unauthorized(ApiError):
    """401: the API has tokens and the request's token is missing or wrong."""


class NotFound(ApiError):
    """404: an unknown instance, definition (`WORKFLOW_NOT_FOUND`) or path."""


class Conflict(ApiError):
    """409: a lifecycle action the instance's state forbids (`INVALID_TRANSITION`), or a definition
    version posted again with other content (`CONFLICT`)."""


class ValidationFailed(ApiError):
    """422: well-formed but unacceptable; `details` names each field."""


class ServerError(ApiError):
    """5xx: the API (or a proxy before it) failed; a request may succeed when repeated."""


class TooManyStreams(ServerError):
    """503 `TOO_MANY_STREAMS`: the API process serves its maximum of event streams; poll instead."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
}


def api_error(status: int, code: str, message: str, details: list[dict[str, Any]] | None = None) -> ApiError:
    """The ApiError subclass for this status and code."""
    kind: type[ApiError] = _BY_STATUS.get(status, ApiError)
    if status >= 500:
        kind = TooManyStreams if code == "TOO_MANY_STREAMS" else ServerError
    return kind(status, code, message, details)


class WaitTimeout(ClientError, TimeoutError):
    """`Run.wait` or `Run.events` reached its timeout before the instance ended."""


class WorkflowEnded(ClientError):
    """An instance ended other than completed; `status` is its final status object."""

    def __init__(self, status: Status) -> None:
        error = status.error
        self.status = status
        self.instance_id = status.id
        self.code = error.code if error else None
        self.node_id = error.node_id if error else None
        self.message = error.message if error else status.status
        node = f" (node {self.node_id})" if self.node_id else ""
        super().__init__(f"instance {status.id} {status.status}: {self.code}{node}: {self.message}")


class WorkflowFailed(WorkflowEnded):
    """The instance failed: `code` (`NODE_FAILED`, `TIMEOUT`...), `node_id` and `message` of its error."""


class WorkflowCancelled(WorkflowEnded):
    """The instance was cancelled (`code` `CANCELLED`, `message` the reason given)."""
