"""Write deploy/.env: deploy/.env.example with a fresh random secret in place of each `change-me...`.

    python deploy/new_env.py            # refuses to overwrite an existing deploy/.env
    python deploy/new_env.py --force

Each distinct placeholder gets one value, so settings that must agree keep agreeing (MYSQL_PASSWORD and
the password inside ORCH_DATABASE_URL are both `change-me-db`). The values are URL-safe (letters,
digits, `-`, `_`): they fit in a database URL and need no quoting for compose. Standard library only.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLACEHOLDER = re.compile(r"change-me[A-Za-z0-9_-]*")


def fill(example: str) -> str:
    """`example` with each placeholder of a setting (not of a comment) replaced, the same one alike."""
    chosen: dict[str, str] = {}

    def secret(match: re.Match[str]) -> str:
        return chosen.setdefault(match.group(0), secrets.token_urlsafe(24))

    lines = example.splitlines(keepends=True)
    return "".join(line if line.lstrip().startswith("#") else PLACEHOLDER.sub(secret, line) for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument("--output", type=Path, default=HERE / ".env")
    args = parser.parse_args(argv)
    if args.output.exists() and not args.force:
        print(f"{args.output} exists; pass --force to replace it", file=sys.stderr)
        return 1
    args.output.write_text(fill((HERE / ".env.example").read_text()))
    args.output.chmod(0o600)
    print(f"wrote {args.output} with new secrets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
