"""deploy/: the compose file's shape (what makes `--scale worker=N` and one beat safe, what is published
and where, the proxy in front of the API), the env file, and the package that `pip install .` in the
Dockerfile builds (with the UI's files in it).

`docker compose config` runs too where a Docker engine answers; this machine has none, so there
only the parsed file is checked.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml

from api.events import KEEPALIVE_S
from orchestrator import secrets_check
from tests.support.services import ROOT

DEPLOY = ROOT / "deploy"
SERVICES = {"mysql", "redis", "rabbitmq", "migrate", "api", "proxy", "worker", "beat", "flower"}
BROKER_USERS = ("api", "worker", "beat", "flower")
BIND = "${ORCH_BIND:-127.0.0.1}"
ONE_SHOT = {"migrate"}


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def _env_example() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _seconds(value: str | int) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", str(value))
    assert match and any(match.groups()), f"not a duration: {value!r}"
    return int(match.group(1) or 0) * 60 + float(match.group(2) or 0)


def _command(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def test_every_service_is_there_with_one_beat_and_scalable_workers() -> None:
    services = _compose()["services"]
    assert set(services) == SERVICES
    beats = [name for name, s in services.items() if " beat" in f" {_command(s)}"]
    assert beats == ["beat"], "exactly one service runs celery beat"
    assert "deploy" not in services["beat"] or services["beat"]["deploy"].get("replicas", 1) == 1

    worker = services["worker"]
    assert "container_name" not in worker, "a fixed name stops `--scale worker=N`"
    assert "ports" not in worker, "host ports collide when scaled"
    assert "hostname" not in worker, "each replica must get its own hostname (its worker id)"
    assert "ORCH_WORKER_ID" not in _env_example(), "a shared worker id would merge all workers into one"
    assert "ORCH_WORKER_ID" not in (worker.get("environment") or {})
    assert _command(worker).startswith("orchestrator worker") and " -E" in _command(worker)
    assert _command(services["api"]).startswith("orchestrator api")
    assert _command(services["migrate"]) == "orchestrator db upgrade"
    assert "flower" in _command(services["flower"]) and "--port=5555" in _command(services["flower"])


def test_long_running_services_have_healthchecks_and_start_in_order() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no"
            continue
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    assert services["migrate"]["depends_on"]["mysql"]["condition"] == "service_healthy"
    for name in ("api", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["proxy"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert "--appendonly" in services["redis"]["command"], "the broker must persist its queues"
    assert any(v.endswith(":/var/lib/mysql") for v in services["mysql"]["volumes"])
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])


def test_the_rabbitmq_profile_adds_a_durable_broker_that_holds_long_nodes() -> None:
    services = _compose()["services"]
    rabbit = services["rabbitmq"]
    assert rabbit["profiles"] == ["rabbitmq"], "only with `--profile rabbitmq`"
    assert [name for name, s in services.items() if s.get("profiles")] == ["rabbitmq"]
    assert any(v.endswith(":/var/lib/rabbitmq") for v in rabbit["volumes"]), "its queues survive a restart"
    # the delivery acknowledgement timeout is above any node (late ack holds a message while it runs)
    erl_args = rabbit["environment"]["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
    timeout_ms = re.search(r"consumer_timeout (\d+)", erl_args)
    assert timeout_ms and int(timeout_ms.group(1)) >= 12 * 3600 * 1000
    assert not rabbit.get("ports"), "reached on the compose network only"
    for name in BROKER_USERS:
        dependency = services[name]["depends_on"]["rabbitmq"]
        # waited for with the profile on, dropped without it
        assert dependency == {"condition": "service_healthy", "required": False}, name
    env = _env_example()
    assert env["RABBITMQ_DEFAULT_PASS"].startswith("change-me")
    assert env["RABBITMQ_DEFAULT_VHOST"] == "orchestrator"


def test_ports_are_published_on_loopback_unless_told_otherwise_and_the_api_only_through_the_proxy() -> None:
    services = _compose()["services"]
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert published == {"proxy": [f"{BIND}:8080:8080"], "flower": [f"{BIND}:5555:5555"]}
    assert services["api"].get("expose") == ["8080"]
    # what compose makes of the default: 127.0.0.1, not every interface
    assert re.sub(r"\$\{ORCH_BIND:-([^}]*)\}", r"\1", published["proxy"][0]).startswith("127.0.0.1:")
    assert "--insecure" not in _command(services["api"]), "the API in compose runs with tokens"


def test_the_proxy_is_nginx_with_client_timeouts_and_unbuffered_event_streams() -> None:
    proxy = _compose()["services"]["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    conf = (DEPLOY / "nginx.conf").read_text()
    for directive in ("client_header_timeout", "client_body_timeout", "send_timeout", "client_max_body_size"):
        assert re.search(rf"^\s*{directive}\s+\S+;", conf, re.M), directive
    assert nginx_seconds(conf, "client_header_timeout") <= 10
    assert "server api:8080;" in conf and "proxy_pass http://orchestrator_api;" in conf
    events = re.search(r"location ~ \^/api/v1/instances/\[\^/\]\+/events\$ \{(.*?)\}", conf, re.S)
    assert events and "proxy_buffering off;" in events.group(1)
    # an open stream's keepalive comes well within the read timeout, so nginx never cuts one
    assert nginx_seconds(conf, "proxy_read_timeout") > 2 * KEEPALIVE_S
    # nginx lets go of an idle upstream connection before gunicorn closes it (no reuse of a closing one)
    assert nginx_seconds(conf, "keepalive_timeout", within="upstream") < gunicorn_conf()["keepalive"]
    assert re.search(r"log_format \w+ [^;]*\$uri", conf) and "$request " not in conf, "no query string logged"


def nginx_seconds(conf: str, directive: str, within: str | None = None) -> float:
    if within:
        block = re.search(rf"{within}\s+\w+\s*\{{(.*?)\}}", conf, re.S)
        assert block, within
        conf = block.group(1)
    match = re.search(rf"^\s*{directive}\s+(\d+)s?;", conf, re.M)
    assert match, directive
    return float(match.group(1))


def gunicorn_conf() -> dict[str, Any]:
    path = ROOT / "api" / "gunicorn_conf.py"  # by path, as gunicorn reads it
    spec = importlib.util.spec_from_file_location("gunicorn_conf_under_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return vars(module)


def test_flower_checks_for_placeholder_secrets_before_it_starts() -> None:
    command = _compose()["services"]["flower"]["command"]
    assert command[:2] == ["sh", "-c"]
    assert command[2].startswith("python -m orchestrator.secrets_check && exec celery -A workers.app flower")


def test_worker_shutdown_grace_fits_inside_the_stop_grace_period() -> None:
    worker = _compose()["services"]["worker"]
    grace = float(_env_example()["ORCH_SHUTDOWN_GRACE"])
    assert _seconds(worker["stop_grace_period"]) > grace


def test_env_example_configures_mysql_redis_flower_and_the_example_executors() -> None:
    env = _env_example()
    assert env["ORCH_DATABASE_URL"] == f"mysql+pymysql://orch:{env['MYSQL_PASSWORD']}@mysql:3306/orchestrator"
    assert env["ORCH_BROKER_URL"] == "redis://redis:6379/0"
    assert env["ORCH_EXECUTOR_MODULES"] == "examples.executors"
    assert {"MYSQL_ROOT_PASSWORD", "MYSQL_DATABASE", "MYSQL_USER", "MYSQL_PASSWORD"} <= set(env)
    assert ":" in env["FLOWER_BASIC_AUTH"]
    assert env["ORCH_API_TOKENS"]
    assert "ORCH_API_THREADS" not in env, "gevent workers have no thread count"


def test_new_env_replaces_every_placeholder_and_keeps_the_database_password_in_step(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    script = [sys.executable, str(DEPLOY / "new_env.py"), "--output", str(target)]
    assert subprocess.run(script, capture_output=True, timeout=60).returncode == 0
    written = {}
    for line in target.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            written[key] = value
    assert secrets_check.placeholder_secrets(written) == []
    settings = [line for line in target.read_text().splitlines() if not line.startswith("#")]
    assert not [line for line in settings if "change-me" in line]
    assert (
        written["ORCH_DATABASE_URL"]
        == f"mysql+pymysql://orch:{written['MYSQL_PASSWORD']}@mysql:3306/orchestrator"
    )
    assert len({written["MYSQL_PASSWORD"], written["MYSQL_ROOT_PASSWORD"], written["ORCH_API_TOKENS"]}) == 3
    assert target.stat().st_mode & 0o077 == 0, "readable by its owner only"
    again = subprocess.run(script, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "--force" in again.stderr  # an existing file is kept


def _copied_sources() -> list[str]:
    """The repository paths the Dockerfile copies into the image (its build inputs)."""
    text = (DEPLOY / "Dockerfile").read_text()
    return [path for line in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M) for path in line.split()]


def test_dockerfile_is_slim_non_root_and_installs_the_package() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"^RUN pip install \. ", text, re.M), "installs the package, without dev extras"
    assert "[test]" not in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    for path in _copied_sources():
        assert (ROOT / path).exists(), f"the Dockerfile copies {path}, which is missing"


def test_makefile_up_and_down_use_the_compose_file() -> None:
    makefile = (ROOT / "Makefile").read_text()
    up = re.search(r"^up:\n((?:\t.*\n)+)", makefile, re.M)
    assert up, "make up"
    recipe = up.group(1).splitlines()
    # secrets first: without deploy/.env every service would refuse the example's placeholders
    assert recipe[0].startswith("\ttest -f deploy/.env || $(PYTHON) deploy/new_env.py")
    assert recipe[-1] == "\tdocker compose -f deploy/docker-compose.yml up -d --build"
    assert re.search(r"^down:\n\tdocker compose -f deploy/docker-compose\.yml down$", makefile, re.M)


def test_the_image_build_inputs_make_a_package_with_the_ui_and_the_migrations(tmp_path: Path) -> None:
    """What `pip install .` builds in the image: a wheel from exactly the files the Dockerfile copies."""
    context = tmp_path / "context"
    for path in _copied_sources():
        source, target = ROOT / path, context / path
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(context)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (
        "api/static/ui/dag.js",
        "api/static/ui/common.js",
        "api/static/ui/list.js",
        "api/static/ui/ui.css",
        "api/templates/ui/instance.html",
        "api/templates/ui/instances.html",
        "api/templates/ui/login.html",
        "api/static/ui/login.js",
        "api/gunicorn_conf.py",
        "orchestrator/migrations/versions/0001_initial_schema.py",
        "workers/observe.py",
        "examples/executors.py",
    ):
        assert path in names, f"{path} is not in the package"


def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        compose = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=20)
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return compose.returncode == 0 and info.returncode == 0


def test_docker_compose_accepts_the_file_where_docker_runs() -> None:
    if not _docker_engine_answers():
        return  # no engine on this machine: the checks above are what runs here
    result = subprocess.run(
        ["docker", "compose", "-f", str(DEPLOY / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
