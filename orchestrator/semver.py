"""Semantic versions (semver 2.0) as sort keys, so `latest` means the highest version, not the newest row.

Besides `MAJOR.MINOR.PATCH[-prerelease][+build]` we accept `MAJOR` and `MAJOR.MINOR` (missing parts
are 0) because people write "1.0". Build metadata is ignored for precedence, as semver requires.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_NUM = r"(?:0|[1-9][0-9]*)"
# A prerelease identifier is numeric (no leading zero) or alphanumeric with at least one non-digit.
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_VERSION = re.compile(
    rf"(?P<major>{_NUM})(?:\.(?P<minor>{_NUM})(?:\.(?P<patch>{_NUM}))?)?"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?",
    re.ASCII,
)

VersionKey = tuple[int, int, int, tuple[tuple[int, int, str], ...]]


def is_valid(text: object) -> bool:
    """True if `text` is a string in one of the accepted version forms."""
    return isinstance(text, str) and _VERSION.fullmatch(text) is not None


def parse_version(text: str) -> VersionKey:
    """A key whose ordering is semver precedence; raises `ValueError` if `text` is not a version.

    A release sorts above its prereleases; prerelease identifiers compare numerically when numeric,
    in ASCII order otherwise, numeric below alphanumeric, and a longer list wins a tie on its prefix.
    """
    match = _VERSION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not a semantic version: {text!r}")
    major, minor, patch = (int(match[part] or 0) for part in ("major", "minor", "patch"))
    pre = match["pre"]
    if pre is None:
        # (1,) sorts above every prerelease tuple, which all start with 0.
        return major, minor, patch, ((1, 0, ""),)
    return major, minor, patch, ((0, 0, ""), *(_identifier_key(part) for part in pre.split(".")))


def _identifier_key(identifier: str) -> tuple[int, int, str]:
    if identifier.isdigit():
        return (0, int(identifier), "")
    return (1, 0, identifier)


def latest(versions: Iterable[str]) -> str | None:
    """The highest valid version in `versions` (invalid strings are skipped), or None if there is none.

    Versions of equal precedence ("1.0" and "1.0.0", or differing build metadata) are decided by
    string order so the answer never depends on the order of the input.
    """
    best: tuple[VersionKey, str] | None = None
    for version in versions:
        if not is_valid(version):
            continue
        candidate = (parse_version(version), version)
        if best is None or candidate > best:
            best = candidate
    return None if best is None else best[1]
