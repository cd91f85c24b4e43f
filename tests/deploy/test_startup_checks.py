"""Start-up refusals: placeholder secrets (`change-me...`, as in deploy/.env.example) stop `api`, `worker`,
`beat` and compose's Flower check with a clear message; an API without tokens on an address other
than loopback needs `--insecure`, and then warns."""

from __future__ import annotations

import subprocess
import sys

import requests

from orchestrator import secrets_check
from tests.api.served import ServedApi
from tests.deploy.test_compose import _env_example
from tests.support.fixtures import MYSQL_URL, REDIS_URL
from tests.support.services import ROOT, free_port, process_env

PLACEHOLDER_TOKEN = "change-me-token"


def _run(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    settings = {"ORCH_DATABASE_URL": MYSQL_URL, "ORCH_BROKER_URL": REDIS_URL, **env}
    return subprocess.run(
        [sys.executable, *argv],
        env=process_env(**settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_placeholder_of_the_example_env_file_is_found() -> None:
    example = _env_example()
    assert secrets_check.placeholder_secrets(example) == [
        "ORCH_API_TOKENS",
        "ORCH_DATABASE_URL (its password)",
        "FLOWER_BASIC_AUTH",
        "MYSQL_PASSWORD",
        "MYSQL_ROOT_PASSWORD",
        "RABBITMQ_DEFAULT_PASS",
    ]
    real = {
        "ORCH_API_TOKENS": "a-real-one,Xq3",
        "ORCH_DATABASE_URL": "mysql+pymysql://orch:s3cr%40t@mysql:3306/orchestrator",
        "ORCH_BROKER_URL": "redis://:pw@redis:6379/0",
        "FLOWER_BASIC_AUTH": "admin:long-random,ops:other",
        "MYSQL_PASSWORD": "s3cr@t",
        "MYSQL_ROOT_PASSWORD": "x",
        "RABBITMQ_DEFAULT_PASS": "y",
    }
    assert secrets_check.placeholder_secrets(real) == []
    assert secrets_check.refusal(real) is None
    for var, value in (
        ("ORCH_API_TOKENS", "good, CHANGE_ME"),
        ("ORCH_BROKER_URL", "redis://:changeme@redis:6379/0"),
        ("ORCH_BROKER_URL", "amqp://orch:change-me-rabbit@rabbitmq:5672/orchestrator"),
        ("ORCH_METRICS_URL", "redis://:change-me@redis:6379/1"),
        ("RABBITMQ_DEFAULT_PASS", "change-me-rabbit"),
        ("ORCH_DATABASE_URL", "mysql+pymysql://orch:change-me%2Ddb@mysql/orchestrator"),
        ("FLOWER_BASIC_AUTH", "admin:fine,guest:change-me"),
    ):
        assert secrets_check.placeholder_secrets({**real, var: value}), (var, value)


def test_api_worker_and_beat_refuse_placeholder_secrets_with_a_clear_message() -> None:
    cli = ("-m", "orchestrator_cli")
    for argv, env in (
        ((*cli, "api", "--port", str(free_port())), {"ORCH_API_TOKENS": PLACEHOLDER_TOKEN}),
        ((*cli, "api"), {"ORCH_API_TOKENS": "fine", "FLOWER_BASIC_AUTH": "admin:change-me"}),
        ((*cli, "worker", "-l", "info"), {"ORCH_DATABASE_URL": "mysql+pymysql://orch:change-me@db/x"}),
        ((*cli, "beat"), {"MYSQL_ROOT_PASSWORD": "change-me-root"}),
        (("-m", "orchestrator.secrets_check"), {"FLOWER_BASIC_AUTH": "admin:change-me-flower"}),
    ):
        result = _run(*argv, **env)
        assert result.returncode == 2, (argv, result.stdout[-2000:], result.stderr[-2000:])
        assert "refusing to start" in result.stderr and "placeholder secret" in result.stderr
        assert next(iter(env)) in result.stderr or "FLOWER_BASIC_AUTH" in result.stderr
        assert "change-me-" not in result.stderr and "change-me@" not in result.stderr  # no value shown
    assert _run("-m", "orchestrator.secrets_check", ORCH_API_TOKENS="real").returncode == 0


def test_an_open_api_on_a_non_loopback_address_needs_insecure(db, tmp_path) -> None:
    refused = _run("-m", "orchestrator_cli", "api", "--host", "0.0.0.0", "--port", str(free_port()))
    assert refused.returncode == 2
    assert "without ORCH_API_TOKENS on 0.0.0.0" in refused.stderr and "--insecure" in refused.stderr

    # with --insecure it serves, and says so loudly before gunicorn starts
    api = ServedApi(tmp_path, "--host", "0.0.0.0", "--insecure", "--workers", "1").start()
    try:
        assert requests.get(api.url + "/api/v1/definitions", timeout=10).status_code == 200  # open
        assert "WARNING: ORCH_API_TOKENS is not set and the API listens on 0.0.0.0" in api.log()
    finally:
        api.stop()
    # tokens, or loopback (the default host), need no flag
    with_tokens = ServedApi(tmp_path, "--host", "0.0.0.0", "--workers", "1", ORCH_API_TOKENS="t").start()
    with_tokens.stop()
    on_loopback = ServedApi(tmp_path, "--workers", "1").start()
    try:
        assert "WARNING: ORCH_API_TOKENS is not set and the API listens" not in on_loopback.log()
    finally:
        on_loopback.stop()
