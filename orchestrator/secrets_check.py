"""Start-up refusal of placeholder secrets: `api`, `worker` and `beat` (and compose's Flower) do not
run with the `change-me...` values of `deploy/.env.example`.

Compose reads that example file for every service, so its placeholder token and passwords would be
live on any deployment that forgot to override them. The check reads only names and compares values
to the placeholder shape; it never prints a value.

`python -m orchestrator.secrets_check` runs the check alone and exits 2 on a placeholder (the compose
Flower service runs it before Flower, which is not our code).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

# `change-me`, `change_me`, `changeme`, `CHANGE-ME-root`...: the shape of every placeholder we ship
_PLACEHOLDER = re.compile(r"change[-_ ]?me", re.I)
_URLS = ("ORCH_DATABASE_URL", "ORCH_BROKER_URL", "ORCH_METRICS_URL")
# RABBITMQ_DEFAULT_PASS: the compose RabbitMQ's user (deploy/docker-compose.yml, profile rabbitmq)
_PLAIN = ("MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD", "RABBITMQ_DEFAULT_PASS")


def is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value.strip()))


def _url_password(url: str) -> str:
    try:
        return unquote(urlsplit(url).password or "")
    except ValueError:  # not a URL we can read: the settings' own checks report it
        return ""


def placeholder_secrets(env: Mapping[str, str]) -> list[str]:
    """The settings in `env` that still hold a placeholder secret, each named (never its value)."""
    found = []
    if any(is_placeholder(token) for token in env.get("ORCH_API_TOKENS", "").split(",") if token.strip()):
        found.append("ORCH_API_TOKENS")
    found += [f"{var} (its password)" for var in _URLS if is_placeholder(_url_password(env.get(var, "")))]
    # user:password, comma-separated for several users (Flower's own format)
    pairs = [pair for pair in env.get("FLOWER_BASIC_AUTH", "").split(",") if pair.strip()]
    if any(is_placeholder(pair.partition(":")[2]) for pair in pairs):
        found.append("FLOWER_BASIC_AUTH")
    found += [var for var in _PLAIN if is_placeholder(env.get(var, ""))]
    return found


def refusal(env: Mapping[str, str] | None = None) -> str | None:
    """The message to stop with when `env` (default: this process's environment) holds a placeholder
    secret, else None."""
    found = placeholder_secrets(os.environ if env is None else env)
    if not found:
        return None
    return (
        f"refusing to start: {', '.join(found)} still hold{'s' if len(found) == 1 else ''} a placeholder "
        "secret ('change-me...', as in deploy/.env.example). Set real secrets, e.g. in deploy/.env "
        "(`python deploy/new_env.py` writes one with random values); see docs/operations.md."
    )


def main() -> int:
    message = refusal()
    if message:
        print(message, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
