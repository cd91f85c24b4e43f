"""`orchestrator limits list|set|clear`: limits from the command line, on `client.limits` (reads
ORCH_API_URL and ORCH_API_TOKEN like the other client commands)."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.client import Client, ExecutorLimits
from orchestrator.client.limits import UNSET, Limits

NONE = "none"  # a value that removes that kind of limit


def add_commands(sub: Any) -> None:
    found = sub.add_parser("limits", help="concurrency and rate limits; an executor's set through the API")
    actions = found.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every limit: name, kind, limit, in use, waiting, source")
    put = actions.add_parser(
        "set",
        help="set an executor's limits through the API (replacing those set before); a field left "
        "out keeps ORCH_LIMITS' and the code's",
    )
    put.add_argument("executor", help="crm.push, or executor:crm.push")
    put.add_argument("--concurrency", metavar="N|none", help=f"slots across the cluster; {NONE}: no limit")
    put.add_argument("--rate", metavar="RATE|none", help=f"such as 10/s, 100/m, 1000/h; {NONE}: no limit")
    clear = actions.add_parser("clear", help="drop an executor's limits set through the API")
    clear.add_argument("executor")


class UsageError(ValueError):
    """A command line the API is not asked about."""


def _concurrency(text: str | None) -> Any:
    if text is None:
        return UNSET
    if text == NONE:
        return None
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--concurrency must be a whole number or {NONE}, got {text!r}") from None


def _rate(text: str | None) -> Any:
    if text is None:
        return UNSET
    return None if text == NONE else text


def _line(found: ExecutorLimits) -> str:
    def shown(kind: str, value: Any) -> str:
        source = found.sources.get(kind)
        return f"{kind} {NONE if value is None else value}" + (f" ({source})" if source else "")

    return f"{found.name}\t{shown('concurrency', found.concurrency)}\t{shown('rate', found.rate)}"


def run(client: Client, args: argparse.Namespace) -> int:
    """One `limits` action; client errors propagate to the caller, which prints them."""
    limits: Limits = client.limits
    if args.action == "list":
        for limit in limits.list():
            print(
                f"{limit.name}\t{limit.kind}\t{limit.limit}\t{limit.in_use}\t{limit.waiting}\t{limit.source}"
            )
    elif args.action == "set":
        concurrency, rate = _concurrency(args.concurrency), _rate(args.rate)
        if concurrency is UNSET and rate is UNSET:
            raise UsageError("give --concurrency and/or --rate")
        print(_line(limits.set(args.executor, concurrency=concurrency, rate=rate)))
    else:
        print(_line(limits.clear(args.executor)))
    return 0
