"""The `orchestrator` command: the composition root. It reaches into `api/` and `workers/` only inside
the command that needs them, so that a client command loads neither Flask nor Celery."""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from orchestrator import secrets_check
from orchestrator.command_help import describe_settings, epilog
from orchestrator.connectivity import Unreachable, check_database, shown_url
from orchestrator.database_urls import mysql_driver
from orchestrator.settings import Settings, SettingsError

INSECURE_WARNING = (
    "WARNING: ORCH_API_TOKENS is not set and the API listens on {host}, not only on loopback: anyone "
    "who can reach {host}:{port} can create, cancel and read every workflow (started with --insecure)"
)

# `orchestrator worker|beat --help`: Celery prints its own options, then these lines
_CELERY_HELP = {
    "worker": "orchestrator worker: a Celery worker that runs nodes; the options above are Celery's.",
    "beat": (
        "orchestrator beat: Celery beat, which sends the recovery and retention sweeps; the options "
        "above are Celery's."
    ),
}


# gunicorn's gevent workers serve every connection of a process on one thread: a C driver's wait on
# the server cannot yield to the others (README, "The MySQL driver")
MYSQLDB_API_WARNING = (
    "orchestrator: warning: ORCH_DATABASE_URL uses mysql+mysqldb:// (mysqlclient), whose queries block "
    "the API's gevent workers while they wait on the server (event streams, other requests); "
    "mysql+pymysql:// serves them concurrently"
)


def _db_upgrade(args: argparse.Namespace) -> int:
    from orchestrator.migrate import upgrade

    url = Settings.from_env().database_url
    upgrade(url)
    print(f"database schema is up to date ({shown_url(url)})")
    return 0


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to anything


def _refuse_placeholders() -> int:
    message = secrets_check.refusal()
    if message:
        print(f"orchestrator: {message}", file=sys.stderr)
        return 2
    return 0


def _gunicorn_config() -> str:
    # by path, not `python:api.gunicorn_conf`: the gunicorn master must not import the `api` package
    # (Flask, SQLAlchemy) before each gevent worker has patched itself
    spec = importlib.util.find_spec("api")
    assert spec is not None and spec.submodule_search_locations
    return str(Path(next(iter(spec.submodule_search_locations))) / "gunicorn_conf.py")


def _api(args: argparse.Namespace) -> int:
    if _refuse_placeholders():
        return 2
    if not Settings.from_env().api_tokens and not _is_loopback(args.host):
        if not args.insecure:
            print(
                f"orchestrator: refusing to serve the API without ORCH_API_TOKENS on {args.host}, which is "
                "not a loopback address: set ORCH_API_TOKENS, bind to 127.0.0.1, or pass --insecure "
                "to serve it open anyway",
                file=sys.stderr,
            )
            return 2
        print(INSECURE_WARNING.format(host=args.host, port=args.port), file=sys.stderr, flush=True)
    if mysql_driver(Settings.from_env().database_url) == "mysqldb":
        print(MYSQLDB_API_WARNING, file=sys.stderr, flush=True)
    host = f"[{args.host}]" if ":" in args.host and not args.host.startswith("[") else args.host
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        _gunicorn_config(),
        "--bind",
        f"{host}:{args.port}",
        "--workers",
        str(args.workers),
        "api.wsgi:app",
    ]
    os.execv(sys.executable, argv)
    return 0  # unreachable


def _wants_help(extra: list[str]) -> bool:
    return "--help" in extra or "-h" in extra


def _celery_help(command: str, extra: list[str]) -> int:
    from workers.app import app

    app.start(argv=[command, *extra])
    print(f"\n{_CELERY_HELP[command]}\n\n{epilog(command)}")
    return 0


def _worker(args: argparse.Namespace, extra: list[str]) -> int:
    if _wants_help(extra):
        return _celery_help("worker", extra)
    if _refuse_placeholders():
        return 2
    # a database that does not answer is one line now, not a worker that starts and cannot register
    check_database(Settings.from_env().database_url)
    from workers.app import app

    app.worker_main(argv=["worker", *extra])
    return 0


def _beat(args: argparse.Namespace, extra: list[str]) -> int:
    if _wants_help(extra):
        return _celery_help("beat", extra)
    if _refuse_placeholders():
        return 2
    Settings.from_env()  # a setting that is not valid is one line now, not a traceback from beat
    from workers.app import app

    app.start(argv=["beat", *extra])
    return 0


def _dev(args: argparse.Namespace) -> int:
    from orchestrator_cli.devserver import run

    return run(host=args.host, port=args.port, flower_port=None if args.no_flower else args.flower_port)


def _client(args: argparse.Namespace) -> int:
    from orchestrator import client_cli

    return client_cli.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="A DAG workflow orchestrator on Celery",
        epilog="Settings are ORCH_* environment variables; each command's --help lists those it reads.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="API, worker and beat on SQLite and an embedded broker")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8080)
    dev.add_argument(
        "--flower-port", type=int, default=5555, help="Flower's port on 127.0.0.1 (default 5555)"
    )
    dev.add_argument("--no-flower", action="store_true", help="do not start Flower")
    api = sub.add_parser("api", help="serve the HTTP API with gunicorn (gevent workers)")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    api.add_argument("--port", type=int, default=8080)
    api.add_argument("--workers", type=int, default=int(os.environ.get("ORCH_API_WORKERS", "2")))
    # gthread's thread count, from before the API moved to gevent workers: accepted and ignored
    api.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    api.add_argument(
        "--insecure",
        action="store_true",
        help="serve without ORCH_API_TOKENS on an address other than loopback (open to anyone)",
    )
    sub.add_parser("worker", help="a Celery worker (any further options go to `celery worker`)")
    sub.add_parser("beat", help="Celery beat with the recovery and retention sweeps")
    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    from orchestrator import client_cli

    client_cli.add_commands(sub)
    describe_settings(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in ("worker", "beat"):
            # everything after the sub-command belongs to Celery
            handler = _worker if argv[0] == "worker" else _beat
            return handler(argparse.Namespace(), argv[1:])
        args = build_parser().parse_args(argv)
        handlers = {"dev": _dev, "api": _api, "db": _db_upgrade}
        return handlers.get(args.command, _client)(args)
    except SettingsError as exc:
        # a setting that is not valid is the operator's to fix: which one, in one line
        print(f"orchestrator: error: {exc}", file=sys.stderr)
        return 2
    except Unreachable as exc:
        # a setting that points nowhere (or names the wrong user) is the operator's to fix: say
        # which in one line, not in a traceback
        print(f"orchestrator: error: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
