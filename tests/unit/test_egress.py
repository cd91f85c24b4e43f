"""The egress policy as a decision alone: no connection is ever opened here, least of all to a
link-local or metadata address."""

from __future__ import annotations

import pytest

from orchestrator import egress
from orchestrator.settings import Settings
from orchestrator_cli import devserver

DEFAULTS = egress.policy()


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # the metadata service of most clouds
        "169.254.0.1",
        "fe80::1",
        "fe80::1%eth0",
        "fd00:ec2::254",  # AWS's IPv6 metadata
        "100.100.100.200",  # Alibaba's metadata
        "::ffff:169.254.169.254",  # the same, written as IPv4-mapped IPv6
        "64:ff9b::a9fe:a9fe",  # ... through NAT64
        "64:ff9b:1::a9fe:a9fe",  # ... through a local-use NAT64 prefix
        "2002:a9fe:a9fe::1",  # ... through 6to4
        "127.0.0.1",
        "127.10.20.30",
        "::1",
        "::ffff:127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "fc00::1",
        "fd12:3456::1",
        "100.64.0.1",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
        "255.255.255.255",
    ],
)
def test_the_defaults_deny_link_local_loopback_private_and_other_non_public_addresses(address):
    assert DEFAULTS.denial(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "172.32.0.1"])
def test_the_defaults_allow_public_addresses(address):
    assert DEFAULTS.denial(address) is None


def test_a_denial_names_the_range_and_how_to_open_it():
    reason = DEFAULTS.denial("169.254.169.254")
    assert reason is not None and "169.254.0.0/16" in reason and "metadata" in reason
    assert "ORCH_EGRESS_ALLOW" in (DEFAULTS.denial("127.0.0.1") or "")


def test_an_allow_entry_opens_what_it_names_and_nothing_around_it():
    policy = egress.policy(allow=("127.0.0.2/32",))
    assert policy.denial("127.0.0.2") is None
    assert policy.denial("::ffff:127.0.0.2") is None
    assert policy.denial("127.0.0.1") is not None
    assert policy.denial("::1") is not None


def test_a_broad_allow_does_not_open_the_built_in_ranges_link_local_must_be_named():
    everything = egress.policy(allow=("0.0.0.0/0", "::/0"))
    assert everything.denial("169.254.169.254") is not None
    assert everything.denial("fe80::1") is not None
    assert everything.denial("127.0.0.1") is not None
    assert everything.denial("10.0.0.1") is not None
    assert egress.policy(allow=("169.254.0.0/16",)).denial("169.254.169.254") is None
    assert egress.policy(allow=("169.254.169.254/32",)).denial("169.254.169.254") is None
    # the private range around AWS's IPv6 metadata address does not open that address
    ula = egress.policy(allow=("fc00::/7",))
    assert ula.denial("fd12::1") is None and ula.denial("fd00:ec2::254") is not None


def test_the_most_specific_entry_decides_and_deny_wins_a_tie():
    assert egress.policy(deny=("127.0.0.1/32",), allow=("127.0.0.1/32",)).denial("127.0.0.1") is not None
    assert egress.policy(deny=("10.0.0.0/8",), allow=("10.1.0.0/16",)).denial("10.1.2.3") is None
    assert egress.policy(deny=("10.1.0.0/16",), allow=("10.0.0.0/8",)).denial("10.1.2.3") is not None
    strict = egress.policy(deny=("0.0.0.0/0", "::/0"), allow=("8.8.8.0/24",))  # an allow-list
    assert strict.denial("8.8.8.8") is None
    assert strict.denial("1.1.1.1") is not None
    assert strict.denial("2606:4700:4700::1111") is not None


def test_a_deny_list_closes_public_addresses_too():
    policy = egress.policy(deny=("8.8.8.8/32",))
    assert policy.denial("8.8.8.8") is not None and policy.denial("8.8.4.4") is None


def test_the_settings_read_both_lists_and_name_a_bad_entry():
    settings = Settings.from_env({"ORCH_EGRESS_DENY": "8.8.8.8, 10.0.0.1/8", "ORCH_EGRESS_ALLOW": "::1"})
    assert settings.egress_deny == ("8.8.8.8/32", "10.0.0.0/8")
    assert settings.egress_allow == ("::1/128",)
    assert Settings.from_env({}).egress_allow == ()
    with pytest.raises(ValueError, match="ORCH_EGRESS_ALLOW.*'localhost'"):
        Settings.from_env({"ORCH_EGRESS_ALLOW": "127.0.0.1/32,localhost"})


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:22/",
        "http://0.0.0.0:6379/",
        "http://user:pass@127.0.0.1/hook",
        "http://127.1/",  # short forms that resolvers accept
        "http://2130706433/",
        "http://0x7f.0.0.1/",
        "https://[::ffff:a9fe:a9fe]/",
    ],
)
def test_a_url_whose_host_is_a_denied_literal_address_is_denied_without_resolving(url):
    assert egress.literal_denial(url, DEFAULTS) is not None


@pytest.mark.parametrize(
    "url", ["https://example.com/hook", "http://localhost:8080/", "https://8.8.8.8/x", "http://[not-an-ip/"]
)
def test_a_host_name_or_a_public_address_is_left_to_the_connection(url):
    assert egress.literal_denial(url, DEFAULTS) is None


def test_the_dev_profile_allows_loopback_and_still_denies_link_local(tmp_path):
    env = devserver.dev_environment(tmp_path, "redis://127.0.0.1:1/0")
    policy = egress.policy_of(Settings.from_env(env))
    assert policy.denial("127.0.0.1") is None and policy.denial("::1") is None
    assert policy.denial("169.254.169.254") is not None and policy.denial("10.0.0.1") is not None
