"""`ORCH_LOG_FORMAT=json`: one JSON object per line, with the instance and node where known. The worker's
side is checked in test_metrics.py; here the formatter itself and `orchestrator api` under gunicorn."""

from __future__ import annotations

import json
import logging
import sys

import requests

from orchestrator import logging_setup
from tests.support.services import Process, free_port, wait_for


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("orchestrator.test", logging.WARNING, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_bound_ids_and_record_extras() -> None:
    formatter = logging_setup.JsonFormatter()
    with logging_setup.bound(instance_id="i-1", node_id="n-1", attempt=2):
        line = json.loads(formatter.format(_record("hello %s")))
    assert (line["message"], line["level"], line["logger"]) == ("hello %s", "warning", "orchestrator.test")
    assert (line["instanceId"], line["nodeId"], line["attempt"]) == ("i-1", "n-1", 2)
    assert line["time"].endswith("+00:00")

    outside = json.loads(formatter.format(_record("plain", instance_id="i-2")))
    assert outside["instanceId"] == "i-2" and "nodeId" not in outside  # nothing bound out here

    try:
        raise ValueError("boom")
    except ValueError:
        failed = _record("failed")
        failed.exc_info = sys.exc_info()
    assert "ValueError: boom" in json.loads(formatter.format(failed))["error"]


def test_text_format_leaves_logging_alone() -> None:
    before = [(h, h.formatter) for h in logging.getLogger().handlers]
    assert logging_setup.configure("text") is False
    assert [(h, h.formatter) for h in logging.getLogger().handlers] == before


def test_orchestrator_api_under_gunicorn_logs_json_and_serves_metrics_and_ui(db, processes) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "orchestrator_cli", "api", "--host", "127.0.0.1", "--port", str(port)]
    env = {**processes.env, "ORCH_LOG_FORMAT": "json", "ORCH_API_WORKERS": "1"}
    api = Process("api", argv, env, processes.tmp_path / "api.log").start()
    processes.started.append(api)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert api.alive(), api.log_text()[-3000:]
        try:
            return requests.get(f"{url}/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_for(answers, 30, "gunicorn to serve the API", interval=0.2)
    assert "orchestrator_instances" in requests.get(f"{url}/metrics", timeout=5).text
    assert requests.get(f"{url}/ui/", timeout=5).status_code == 200
    assert requests.get(f"{url}/ui/static/dag.js", timeout=5).status_code == 200

    def json_lines() -> list[dict[str, object]]:
        lines = [line for line in api.log_lines() if line.strip()]
        parsed = [json.loads(line) for line in lines if line.startswith("{")]
        return parsed if any("GET /ui/static/dag.js" in str(e["message"]) for e in parsed) else []

    lines = wait_for(json_lines, 10, "the access log line of the UI script")
    loggers = {e["logger"] for e in lines}
    assert {"gunicorn.access", "api"} <= loggers, loggers  # gunicorn's own lines and the app's
