"""HTTP sessions for the calls the product makes itself (the `http` executor, callbacks), with the
egress policy (`orchestrator/egress.py`) enforced on every connection they open.

A connection resolves its host once, judges every address the name resolved to (one denied address
denies the host: a name that mixes a public and an internal address is not trusted), and connects
to the addresses it judged, never to a second resolution: a DNS answer that changes between the
check and the connect (rebinding) cannot slip through. Each redirect hop to another host opens a
new connection, so it is judged the same way. Proxies from the environment are ignored: through a
proxy the policy would judge the proxy's address, not the target's.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection

from orchestrator.egress import EgressPolicy
from orchestrator.errors import EgressDenied

# (host, port) -> getaddrinfo-style results; a parameter so a test can stand in for DNS
Resolver = Callable[[str, int], list[Any]]


def system_resolver(host: str, port: int) -> list[Any]:
    return socket.getaddrinfo(host, port, connection.allowed_gai_family(), socket.SOCK_STREAM)


def checked_addresses(egress: EgressPolicy, resolve: Resolver, host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, in resolver order, once every one of them is allowed.
    Raises EgressDenied naming the first denied address, socket.gaierror when it does not resolve."""
    addresses: list[str] = []
    for *_, sockaddr in resolve(host, port):
        address = str(sockaddr[0])
        reason = egress.denial(address)
        if reason is not None:
            named = "" if host == address else f"{host} resolves to {address}; "
            raise EgressDenied(f"egress denied: {named}{reason}")
        if address not in addresses:
            addresses.append(address)
    return addresses


class _Checked:
    """Mixed into urllib3's connections: `_new_conn` is where a connection opens its socket."""

    egress: EgressPolicy
    resolve: Resolver

    def _new_conn(self) -> socket.socket:
        conn: Any = self
        host = conn._dns_host.strip("[]")
        try:
            addresses = checked_addresses(self.egress, self.resolve, host, conn.port)
        except socket.gaierror as exc:
            raise NameResolutionError(conn.host, conn, exc) from exc
        error: OSError | None = None
        for address in addresses:
            try:
                sock = connection.create_connection(
                    (address, conn.port),
                    conn.timeout,
                    source_address=conn.source_address,
                    socket_options=conn.socket_options,
                )
            except OSError as exc:  # refused, unreachable, timed out: try the next address
                error = exc
                continue
            sys.audit("http.client.connect", conn, conn.host, conn.port)
            return sock
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out") from error
        raise NewConnectionError(conn, f"Failed to establish a new connection: {error}") from error


@lru_cache(maxsize=16)
def _pool_classes(egress: EgressPolicy, resolve: Resolver) -> dict[str, type]:
    checks = {"egress": egress, "resolve": staticmethod(resolve)}
    plain = type("CheckedHTTPConnection", (_Checked, HTTPConnection), checks)
    tls = type("CheckedHTTPSConnection", (_Checked, HTTPSConnection), checks)
    return {
        "http": type("CheckedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": plain}),
        "https": type("CheckedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": tls}),
    }


class CheckedAdapter(HTTPAdapter):
    """A transport adapter whose connections are judged by `egress`."""

    def __init__(self, egress: EgressPolicy, resolve: Resolver = system_resolver) -> None:
        self._classes = _pool_classes(egress, resolve)
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(self._classes)

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        raise EgressDenied("egress denied: calls through a proxy are not supported by the egress policy")


def session(
    egress: EgressPolicy, *, max_redirects: int = 5, resolve: Resolver = system_resolver
) -> requests.Session:
    """A requests session whose every connection, redirects included, is judged by `egress`; it
    follows at most `max_redirects` redirects. A denied connection raises EgressDenied."""
    http = requests.Session()
    http.trust_env = False  # no proxies (nor netrc credentials) from the environment
    http.max_redirects = max_redirects
    adapter = CheckedAdapter(egress, resolve)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http
