"""Semantic versions: precedence per semver 2.0, the short forms people write, and `latest`."""

from __future__ import annotations

import random

import pytest

from orchestrator.semver import is_valid, latest, parse_version


@pytest.mark.parametrize(
    "text",
    [
        "0.0.0",
        "1.0.0",
        "1.10.3",
        "1",
        "1.0",
        "1.0.0-rc.1",
        "1.0.0-alpha.beta",
        "1.0.0+build.5",
        "1.0.0-rc.1+build.5",
        "1.0.0-x-y.0a",
        "10.20.30",
    ],
)
def test_valid_versions(text: str) -> None:
    assert is_valid(text)
    parse_version(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "latest",
        "v1.0.0",
        "1.0.0.0",
        "01.0.0",
        "1.02.0",
        "1.0.0-",
        "1.0.0-01",
        "1.0.0+",
        "1..0",
        "1.0.0-rc..1",
        " 1.0.0",
        "1.0.0\n",
        "١.٠.٠",
        None,
        1,
        1.0,
    ],
)
def test_invalid_versions(text: object) -> None:
    assert not is_valid(text)
    with pytest.raises(ValueError):
        parse_version(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.9.0", "1.10.0"),
        ("1.0.0-rc.1", "1.0.0"),
        ("1.0.0-rc.1", "1.0.0-rc.2"),
        ("1.0.0-rc.2", "1.0.0-rc.10"),
        ("1.0.0-alpha", "1.0.0-alpha.1"),
        ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
        ("1.0.0-alpha.beta", "1.0.0-beta"),
        ("1.0.0-beta.11", "1.0.0-rc.1"),
        ("0.9.9", "1.0"),
        ("1.0", "1.0.1"),
        ("1", "1.1.0"),
        ("2.0.0-rc.1", "2.0.0"),
        ("1.99.99", "2.0.0-alpha"),
    ],
)
def test_precedence(lower: str, higher: str) -> None:
    assert parse_version(lower) < parse_version(higher)


def test_the_semver_spec_example_sorts_in_order() -> None:
    expected = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
    ]
    shuffled = expected[:]
    random.Random(7).shuffle(shuffled)
    assert sorted(shuffled, key=parse_version) == expected


def test_short_forms_and_build_metadata_have_equal_precedence() -> None:
    assert parse_version("1") == parse_version("1.0") == parse_version("1.0.0")
    assert parse_version("1.0.0+a") == parse_version("1.0.0+b") == parse_version("1.0.0")


def test_latest_picks_highest_by_precedence_not_by_string() -> None:
    assert latest(["1.9.0", "1.10.0", "1.2.0"]) == "1.10.0"
    assert latest(["1.0.0-rc.1", "1.0.0"]) == "1.0.0"
    assert latest(["1.0.0-rc.2", "1.0.0-rc.10"]) == "1.0.0-rc.10"
    assert latest(iter(["0.1", "0.0.9"])) == "0.1"


def test_latest_skips_invalid_and_handles_empty() -> None:
    assert latest([]) is None
    assert latest(["junk", "latest"]) is None
    assert latest(["junk", "2.0.0", "v9.0.0"]) == "2.0.0"


def test_latest_is_independent_of_input_order_on_ties() -> None:
    versions = ["1.0", "1.0.0", "1.0.0+b", "1.0.0+a"]
    assert latest(versions) == latest(list(reversed(versions)))
