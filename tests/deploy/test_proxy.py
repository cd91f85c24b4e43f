"""deploy/nginx.conf in front of a real `orchestrator api`, where an nginx binary is installed
(Debian: `apt-get install nginx-light`): the file as compose mounts it, with only the addresses, the
pid file and the log and temporary paths moved into the test's directory."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.api.helpers import GREETING
from tests.api.served import ServedApi, open_stream
from tests.deploy.test_compose import DEPLOY, nginx_seconds
from tests.support.services import Process, free_port, process_env, wait_for, wait_for_port


def _nginx() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if found is None:
        pytest.fail("no nginx: `apt-get install nginx-light` (.ci/run installs it)", pytrace=False)
    return found


def render(conf: str, work: Path, listen: int, upstream: int) -> str:
    """deploy/nginx.conf for this machine: same directives, local addresses and paths."""
    conf = re.sub(r"^user \S+;\n", "", conf, flags=re.M)  # run as whoever runs the test
    conf = conf.replace("pid /var/run/nginx.pid;", f"pid {work}/nginx.pid;")
    conf = conf.replace("error_log /dev/stderr warn;", f"error_log {work}/error.log warn;")
    conf = conf.replace("access_log /dev/stdout orchestrator;", f"access_log {work}/access.log orchestrator;")
    conf = conf.replace("server api:8080;", f"server 127.0.0.1:{upstream};")
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    temp = "".join(
        f"    {kind}_temp_path {work}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return conf.replace("http {\n", "http {\n" + temp, 1)


def test_nginx_conf_in_front_of_the_api(db, tmp_path) -> None:
    nginx = _nginx()
    api = ServedApi(tmp_path, "--workers", "1", ORCH_API_TOKENS="secret").start()
    port = free_port()
    work = tmp_path / "nginx"
    work.mkdir()
    conf = work / "nginx.conf"
    conf.write_text(render((DEPLOY / "nginx.conf").read_text(), work, port, api.port))
    checked = subprocess.run([nginx, "-t", "-p", str(work), "-c", str(conf)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    proxy = Process(
        "nginx",
        [nginx, "-p", str(work), "-c", str(conf), "-g", "daemon off;"],
        process_env(),
        work / "out.log",
    )
    proxy.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, 20)
        session = requests.Session()
        session.headers["Authorization"] = "Bearer secret"
        assert requests.get(url + "/health", timeout=10).status_code == 200
        assert session.post(url + "/api/v1/definitions", json=GREETING, timeout=10).status_code == 201
        body = {"workflow": "greeting", "input": {"email": "x"}, "start": False}
        instance_id = session.post(url + "/api/v1/instances", json=body, timeout=10).json()["id"]

        # a client that never finishes its headers is dropped by nginx, not left to gunicorn; its
        # header timeout runs while the event stream below waits for its keepalive
        header_timeout = nginx_seconds(conf.read_text(), "client_header_timeout")
        stalled = socket.create_connection(("127.0.0.1", port), timeout=header_timeout * 3)
        started = time.monotonic()
        try:
            stalled.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            assert requests.get(url + "/health", timeout=10).status_code == 200  # meanwhile

            # the event stream comes through as it is written: the opening snapshot, then a keepalive
            sock, status, _, data = open_stream(port, f"/api/v1/instances/{instance_id}/events", "secret")
            try:
                assert status == 200
                while b": keepalive" not in data:
                    chunk = sock.recv(4096)
                    assert chunk, data
                    data += chunk
                assert b"event: status" in data
            finally:
                sock.close()

            answer = b""
            while chunk := stalled.recv(4096):
                answer += chunk
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
            assert time.monotonic() - started < header_timeout * 3
        finally:
            stalled.close()

        requests.get(url + "/ui/?token=secret", timeout=10)
        log = wait_for(lambda: (work / "access.log").read_text(), 10, "the proxy's access log")
        assert '"GET /ui/ HTTP/1.1"' in log and "secret" not in log, log
    finally:
        proxy.kill()
        api.stop()
