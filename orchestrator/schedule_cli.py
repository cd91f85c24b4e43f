"""`orchestrator schedules list|create|pause|resume|trigger|delete`: schedules from the command line,
on `client.schedules` (reads ORCH_API_URL and ORCH_API_TOKEN like the other client commands)."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.client import Client, Schedule
from orchestrator.client.schedules import Schedules


def add_commands(sub: Any) -> None:
    schedules = sub.add_parser("schedules", help="cron schedules that start instances of a workflow")
    actions = schedules.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every schedule with its next fire time")
    create = actions.add_parser("create", help="store a schedule")
    create.add_argument("name")
    create.add_argument("workflow")
    create.add_argument("cron", help="5 fields, or 6 with seconds first; quote it")
    create.add_argument("--timezone", help="an IANA zone (default UTC)")
    create.add_argument("--input", help="the input as JSON")
    create.add_argument("--version", help="a version (default: the latest at each fire time)")
    create.add_argument("--priority", choices=["low", "normal", "high", "critical"])
    create.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    create.add_argument("--overlap", choices=["skip", "allow", "cancelPrevious"])
    create.add_argument("--catchup", choices=["none", "last", "all"])
    create.add_argument("--paused", action="store_true", help="store it paused")
    for action, text in (
        ("pause", "stop firing until resumed"),
        ("resume", "fire again from the next fire time after now"),
        ("trigger", "fire now; prints the instance id"),
        ("delete", "delete the schedule (its instances stay)"),
    ):
        actions.add_parser(action, help=text).add_argument("name")


def _line(schedule: Schedule) -> str:
    fires = schedule.raw.get("nextFireAt") or "paused"
    return f"{schedule.name}\t{schedule.workflow}\t{schedule.cron}\t{schedule.timezone}\t{fires}"


def run(client: Client, args: argparse.Namespace, tags: dict[str, str], given: Any) -> int:
    """One `schedules` action; client errors propagate to the caller, which prints them."""
    schedules: Schedules = client.schedules
    if args.action == "list":
        for schedule in schedules.list():
            print(_line(schedule))
    elif args.action == "create":
        created = schedules.create(
            args.name,
            args.workflow,
            args.cron,
            timezone=args.timezone,
            input=given,
            version=args.version,
            priority=args.priority,
            tags=tags or None,
            overlap=args.overlap,
            catchup=args.catchup,
            paused=args.paused or None,
        )
        print(_line(created))
    elif args.action == "trigger":
        print(schedules.trigger(args.name).id)
    elif args.action == "delete":
        schedules.delete(args.name)
        print(f"{args.name} deleted")
    else:
        changed = schedules.pause(args.name) if args.action == "pause" else schedules.resume(args.name)
        print(_line(changed))
    return 0
