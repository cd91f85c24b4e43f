"""Limits as declared: rates, `ORCH_LIMITS`, a node's gates, a key's name, and the GCRA buckets."""

from __future__ import annotations

import pytest

from orchestrator import limits
from orchestrator.limits import Declared, KeyLimit, Rate


@pytest.mark.parametrize(
    ("text", "count", "per_s"),
    [
        ("10/s", 10, 1.0),
        ("100/m", 100, 60.0),
        ("1000/h", 1000, 3600.0),
        ("5/2s", 5, 2.0),
        (" 3 / minute ", 3, 60.0),
    ],
)
def test_a_rate_is_a_count_per_period(text, count, per_s):
    rate = limits.parse_rate(text)
    assert (rate.count, rate.per_s, rate.burst) == (count, per_s, 1)


@pytest.mark.parametrize(
    "text",
    [
        "abc",
        "10",
        "0/s",
        "10/d",
        "-1/s",
        "10/0s",
        10,
        None,
        "",
        "1/" + "9" * 400 + "h",  # too large for a float
        "1/99999999999999999999h",  # more than a timedelta holds
        "1/25h",  # a period of more than a day
        "1000001/s",
        "1/" + " " * 40 + "s",  # more than the column holds
    ],
)
def test_a_malformed_or_unbounded_rate_is_refused_with_a_value_error(text):
    with pytest.raises(ValueError):
        limits.parse_rate(text)


def test_a_rate_of_a_day_is_the_longest():
    assert limits.parse_rate("1/24h").per_s == 86_400.0
    assert limits.parse_rate("1/86400s").per_s == 86_400.0


def test_an_executor_whose_limits_name_would_not_fit_its_column_is_refused():
    with pytest.raises(ValueError, match=r"ORCH_LIMITS\['x+'\]: an executor with limits"):
        limits.parse_overrides('{"%s": {"concurrency": 2}}' % ("x" * 250))
    with pytest.raises(ValueError, match="at most 246"):
        limits.declare("y" * 247, 1, None)
    limits.declare("y" * 246, 1, None)
    limits.declare("y" * 246, None, None)
    limits.declare("y" * 247, None, None)  # no limits: no name to keep


def test_a_bad_orch_limits_is_one_line_naming_the_setting(monkeypatch, capsys):
    from orchestrator_cli import cli

    monkeypatch.setenv("ORCH_LIMITS", '{"crm.push": {"rate": "1/%sh"}}' % ("9" * 400))
    assert cli.main(["db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("orchestrator: error: ORCH_LIMITS['crm.push']: ") and "Traceback" not in err
    monkeypatch.setenv("ORCH_LIMITS", '{"crm.push": {"rate": "1/99999999999999999999h"}}')
    assert cli.main(["db", "upgrade"]) == 2
    assert "ORCH_LIMITS['crm.push']: " in capsys.readouterr().err


def test_orch_limits_names_the_executor_and_field_it_refuses():
    with pytest.raises(ValueError, match=r"ORCH_LIMITS\['crm.push'\]: must be between 1"):
        limits.parse_overrides('{"crm.push": {"concurrency": 0}}')
    with pytest.raises(ValueError, match="rate"):
        limits.parse_overrides('{"crm.push": {"rate": "fast"}}')
    with pytest.raises(ValueError, match="JSON"):
        limits.parse_overrides("crm.push=4")
    with pytest.raises(ValueError, match="concurrency and/or rate"):
        limits.parse_overrides('{"crm.push": {"burst": 3}}')


def test_a_node_without_limits_has_no_gates_and_an_items_gates_are_its_maps():
    assert limits.node_gates("wf", "a", "no.limits.here", None) == ()
    own = Declared(concurrency=2, rate=limits.parse_rate("1/s"))
    gates = limits.node_gates("wf", "m[7]", None, own)
    assert [(g.kind, g.name) for g in gates] == [("concurrency", "node:wf/m[]"), ("rate", "node:wf/m[]")]
    assert [g.name for g in limits.node_gates("wf", "a", None, own)] == ["node:wf/a", "node:wf/a"]


def test_a_keys_name_fits_its_column():
    key = KeyLimit("${input.c}", 1)
    assert limits.key_name("wf", key, {"input": {"c": 42}}) == "key:wf:42"
    assert len(limits.key_name("w" * 128, key, {"input": {"c": "x" * 500}})) == limits.MAX_NAME_LENGTH


def test_gcra_reserves_one_token_per_interval_after_a_burst_of_one():
    rate = Rate("10/s", 10, 1.0)
    delay, tat = limits.rate_delay(None, 100.0, rate)
    assert delay == 0 and tat == pytest.approx(100.1)
    delays = []
    for _ in range(3):
        delay, tat = limits.rate_delay(tat, 100.0, rate)
        delays.append(delay)
    assert delays == pytest.approx([0.1, 0.2, 0.3])
    assert limits.bucket_used(tat, 100.0, rate) == 4
    # a quiet spell: the next token is at once, and no credit piles up beyond the burst
    delay, tat = limits.rate_delay(tat, 200.0, rate)
    assert delay == 0 and limits.rate_delay(tat, 200.0, rate)[0] == pytest.approx(0.1)


def test_a_start_may_come_half_an_interval_early_not_more():
    rate = Rate("10/s", 10, 1.0)
    assert limits.start_delay(None, 5.0, rate) == 0
    assert limits.start_delay(5.05, 5.0, rate) == 0
    assert limits.start_delay(5.2, 5.0, rate) == pytest.approx(0.15)


def test_starts_under_the_bucket_of_starts_never_exceed_the_rate_plus_one_in_a_second():
    rate = Rate("10/s", 10, 1.0)
    tat, starts, now = None, [], 0.0
    # a worker that delivers late and then in bunches: every start is as early as the bucket allows
    while len(starts) < 200:
        wait = limits.start_delay(tat, now, rate)
        if wait > 0:
            now += wait if len(starts) % 7 else wait + 0.3  # now and then a late delivery
            continue
        starts.append(now)
        tat = limits.start_taken(tat, now, rate)
    assert max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts) <= 11
    assert (len(starts) - 1) / (starts[-1] - starts[0]) == pytest.approx(10, rel=0.25)
