"""The client's typed results: built from the API's JSON, lenient about what they do not know."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.client import ErrorInfo, Event, LogLine, NodeExecution, Status
from orchestrator.client.errors import NotFound, ServerError, TooManyStreams, ValidationFailed, api_error
from orchestrator.client.http import settings_of


def test_unknown_fields_are_ignored_and_kept_in_raw_missing_ones_take_defaults():
    data = {
        "id": "i1",
        "status": "failed",
        "progress": 50,
        "failedNodes": ["n2"],
        "startedAt": "2026-12-02T10:00:00Z",
        "finishedAt": "2026-12-02T10:00:01.500000",
        "error": {"code": "NODE_FAILED", "message": "boom", "nodeId": "n2", "hint": "new"},
        "aFieldOfANewerServer": {"x": 1},
    }
    status = Status.from_json(data)
    assert status.failed_nodes == ("n2",) and status.completed_nodes == () and status.total_nodes == 0
    assert status.started_at == datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    assert status.finished_at == datetime(2026, 12, 2, 10, 0, 1, 500000, tzinfo=UTC)  # no offset: UTC
    assert status.error == ErrorInfo("NODE_FAILED", "boom", "n2")
    assert status.finished and status.raw["aFieldOfANewerServer"] == {"x": 1}
    assert Status.from_json({"status": "running"}).finished is False


def test_events_give_typed_views_of_their_data():
    log = Event("log", {"id": 7, "level": "warning", "message": "m", "nodeId": "a", "timestamp": "bad"}, "7")
    assert log.log == LogLine(id=7, level="warning", message="m", node_id="a", timestamp=None)
    assert log.node is None and log.status is None
    node = Event("node", {"nodeId": "a", "status": "running", "attempt": 2})
    assert node.node == NodeExecution(node_id="a", status="running", attempt=2)


def test_errors_by_status_and_code():
    assert isinstance(api_error(404, "WORKFLOW_NOT_FOUND", "m"), NotFound)
    invalid = api_error(
        422, "VALIDATION_ERROR", "m", [{"field": "input.a", "message": "required", "code": "X"}]
    )
    assert isinstance(invalid, ValidationFailed) and invalid.fields == {"input.a": "required"}
    assert str(invalid) == "422 VALIDATION_ERROR: m\n  input.a: required (X)"
    assert isinstance(api_error(503, "TOO_MANY_STREAMS", "m"), TooManyStreams)
    assert type(api_error(502, "HTTP_ERROR", "m")) is ServerError


def test_url_and_token_from_arguments_then_environment_then_defaults():
    env = {"ORCH_API_URL": "http://api:9000/", "ORCH_API_TOKEN": "t"}
    assert settings_of(None, None, env) == ("http://api:9000", "t")
    assert settings_of("http://other", "u", env) == ("http://other", "u")
    assert settings_of(None, None, {}) == ("http://127.0.0.1:8080", None)
