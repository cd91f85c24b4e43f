"""The egress policy: which addresses the product itself may connect to (the `http` executor and
callback deliveries), from `ORCH_EGRESS_DENY`, `ORCH_EGRESS_ALLOW` and built-in defaults.

Every entry is a CIDR range with a verdict. **The most specific entry covering an address decides**
(the longest prefix, as in a routing table); an address no entry covers (the public internet) is
allowed. On a tie, `ORCH_EGRESS_DENY` beats `ORCH_EGRESS_ALLOW`, which beats the built-in defaults.
So `ORCH_EGRESS_ALLOW=127.0.0.1/32` opens that one loopback address, `ORCH_EGRESS_DENY=0.0.0.0/0,::/0`
with an allow list turns the policy into a strict allow-list, and a broad allow such as `0.0.0.0/0`
opens none of the built-in ranges: to open one, an allow entry must name it or a part of it. That is
what keeps link-local (where clouds serve instance metadata and credentials) closed unless named.

The policy is applied to resolved addresses, at connect time (`orchestrator/outbound.py`); the
literal check at request time (`literal_denial`) is only an early answer for obvious cases.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from orchestrator.settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Denied unless an allow entry names them (or a part of them): link-local and cloud metadata first.
BUILT_IN_DENY: tuple[tuple[str, str], ...] = (
    ("169.254.0.0/16", "link-local, cloud metadata"),
    ("fe80::/10", "link-local, cloud metadata"),
    ("fd00:ec2::254/128", "cloud metadata"),
    ("100.100.100.200/32", "cloud metadata"),
    ("127.0.0.0/8", "loopback"),
    ("::1/128", "loopback"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("fc00::/7", "private (unique local)"),
    ("100.64.0.0/10", "shared address space"),
    ("0.0.0.0/8", "unspecified"),
    ("::/128", "unspecified"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("224.0.0.0/4", "multicast"),
    ("ff00::/8", "multicast"),
    ("240.0.0.0/4", "reserved, broadcast"),
    ("192.0.0.0/24", "protocol assignments"),
    ("198.18.0.0/15", "benchmarking"),
    ("192.0.2.0/24", "documentation"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("2001:db8::/32", "documentation"),
    ("100::/64", "discard"),
    ("64:ff9b:1::/48", "local-use NAT64 (may translate to any IPv4 address, metadata included)"),
    ("fec0::/10", "site-local (deprecated)"),
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_DENY, _ALLOW, _BUILT_IN = 0, 1, 2  # tie-break order among entries of the same prefix length


@dataclass(frozen=True)
class _Entry:
    network: Network
    rank: int  # _DENY, _ALLOW or _BUILT_IN
    label: str

    @property
    def denies(self) -> bool:
        return self.rank != _ALLOW


@dataclass(frozen=True)
class EgressPolicy:
    """The entries, most specific first (ties in `_DENY`, `_ALLOW`, `_BUILT_IN` order)."""

    entries: tuple[_Entry, ...]

    @classmethod
    def of(cls, deny: Iterable[str] = (), allow: Iterable[str] = ()) -> EgressPolicy:
        opened = "denied by default, ORCH_EGRESS_ALLOW can name it"
        listed = [(net, _BUILT_IN, f"{label}; {opened}") for net, label in BUILT_IN_DENY]
        listed += [(net, _DENY, "listed in ORCH_EGRESS_DENY") for net in deny]
        listed += [(net, _ALLOW, "listed in ORCH_EGRESS_ALLOW") for net in allow]
        entries = [
            _Entry(ipaddress.ip_network(net, strict=False), rank, label) for net, rank, label in listed
        ]
        entries.sort(key=lambda e: (-e.network.prefixlen, e.rank))
        return cls(tuple(entries))

    def denial(self, address: str | Address) -> str | None:
        """Why a connection to `address` is denied, or None when it is allowed.

        An IPv4 address carried in IPv6 (mapped, NAT64, 6to4) is judged as that IPv4 address too."""
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
        for candidate in _forms(ip):
            reason = self._judge(candidate)
            if reason is not None:
                return reason
        return None

    def _judge(self, ip: Address) -> str | None:
        for entry in self.entries:
            if entry.network.version == ip.version and ip in entry.network:
                if not entry.denies:
                    return None
                return f"{ip} is in {entry.network} ({entry.label})"
        return None


def _forms(ip: Address) -> list[Address]:
    if isinstance(ip, ipaddress.IPv4Address):
        return [ip]
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    forms: list[Address] = [ip]
    if ip.sixtofour is not None:
        forms.append(ip.sixtofour)
    if ip in _NAT64:
        forms.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return forms


@lru_cache(maxsize=16)
def policy(deny: tuple[str, ...] = (), allow: tuple[str, ...] = ()) -> EgressPolicy:
    """The policy of these lists (built once per distinct pair)."""
    return EgressPolicy.of(deny, allow)


def policy_of(settings: Settings) -> EgressPolicy:
    return policy(settings.egress_deny, settings.egress_allow)


def current_policy() -> EgressPolicy:
    """The policy of this process's environment (`ORCH_EGRESS_DENY`, `ORCH_EGRESS_ALLOW`)."""
    return policy_of(Settings.from_env())


_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")


def literal_address(host: str) -> Address | None:
    """`host` as an IP address when it is written as one (including the short and numeric IPv4
    forms that resolvers accept, like `127.1` or `2130706433`); None for a name. Never resolves."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def literal_denial(url: str, egress: EgressPolicy) -> str | None:
    """Why `url` is denied when its host is a literal IP address the policy denies; None otherwise
    (a host name is judged only when it is resolved, at connect time)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    address = literal_address(host) if host else None
    return None if address is None else egress.denial(address)
