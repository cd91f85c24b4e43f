"""An instance's status as a person reads it (`orchestrator status`), and as an exit code a script
can branch on (`status`, `submit --watch`).

Exit codes: 0 completed, or not ended yet (pending, running, paused: nothing went wrong so far);
1 failed; 2 the command itself failed (a request the API refused, an API that did not answer, a
wrong command line: argparse's own code for the last); 3 cancelled.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ERROR = 2
EXIT_CANCELLED = 3
FINISHED = ("completed", "failed", "cancelled")

EXIT_CODES_HELP = (
    "exit status: 0 completed (for `status` also: not ended yet, i.e. pending, running or paused), "
    "1 failed, 2 the command failed (the API refused the request or did not answer, or a wrong "
    "command line), 3 cancelled"
)


def exit_code(status: str) -> int:
    """The exit code for an instance in `status`."""
    return {"failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED}.get(status, EXIT_OK)


def worst_exit_code(statuses: Iterable[str]) -> int:
    """One code for several instances: 1 if any failed, else 3 if any was cancelled, else 0."""
    codes = {exit_code(s) for s in statuses}
    for code in (EXIT_FAILED, EXIT_CANCELLED):
        if code in codes:
            return code
    return EXIT_OK


def elapsed_text(ms: int | float | None) -> str:
    """`850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def elapsed_ms(status: dict[str, Any], now: datetime | None = None) -> int | float | None:
    """How long the instance has run: the API's `executionTimeMs` once it has ended; while it runs,
    the time since `startedAt` (the API's figure then stops at the instance's last update)."""
    reported = status.get("executionTimeMs")
    started = _parse_time(status.get("startedAt"))
    if status.get("status") in FINISHED or started is None:
        return reported  # type: ignore[no-any-return]
    so_far = ((now or datetime.now(UTC)) - started).total_seconds() * 1000
    return max(so_far, reported or 0)


def _names(nodes: list[str], limit: int = 8) -> str:
    shown = ", ".join(nodes[:limit])
    return shown + (f" (+{len(nodes) - limit} more)" if len(nodes) > limit else "")


def summary(status: dict[str, Any], instance: dict[str, Any] | None = None) -> str:
    """A few aligned `label  value` lines: workflow, status, progress, the nodes running, queued,
    waiting (for a signal or a timer), failed and skipped, the error (code, node, message) and the
    elapsed time."""
    lines: list[tuple[str, str]] = [("instance", str(status.get("id")))]
    if instance is not None:
        lines.append(("workflow", f"{instance.get('workflow')} {instance.get('version')}"))
    lines.append(("status", str(status.get("status"))))
    kinds = (("completedNodes", "completed"), ("failedNodes", "failed"), ("skippedNodes", "skipped"))
    counts = [f"{len(status[key])} {word}" for key, word in kinds if status.get(key)]
    detail = f" ({', '.join(counts)})" if counts else ""
    items = f" and {status['totalItems']} items" if status.get("totalItems") else ""
    lines.append(
        ("progress", f"{status.get('progress')}% of {status.get('totalNodes')} nodes{items}{detail}")
    )
    for key, label in (
        ("currentNodes", "running"),
        ("queuedNodes", "queued"),
        ("waitingNodes", "waiting"),
        ("failedNodes", "failed"),
        ("skippedNodes", "skipped"),
    ):
        if status.get(key):
            lines.append((label, _names(status[key])))
    error = status.get("error")
    if isinstance(error, dict):
        node = f" (node {error['nodeId']})" if error.get("nodeId") else ""
        lines.append(("error", f"{error.get('code')}{node}: {error.get('message')}"))
    lines.append(("elapsed", elapsed_text(elapsed_ms(status))))
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in lines)
