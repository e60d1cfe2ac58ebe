"""Where deliveries may not go: `egress.deny`, checked on the address actually connected to.

A webhook's URL names a host; DNS decides where that host is, and DNS can change its
answer between a check and a connection (DNS rebinding). So the rule is applied inside
the connector, on every address the resolver returns: `DenyingResolver` drops the denied
ones and fails when none is left. aiohttp does not ask the resolver about IP-literal
hosts (`https://127.0.0.1/`), so senders call `EgressPolicy.check_host` before sending.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import socket
from collections.abc import Iterable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from mailhooks import log
from mailhooks.settings import Settings

_log = log.get(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressDenied(OSError):
    """A connection to an address that `egress.deny` forbids.

    An `OSError` so that aiohttp's connector wraps it as a connection error; its
    `strerror` is the one-line reason.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__(errno.EACCES, f"address {address} is denied by egress.deny")

    def __str__(self) -> str:
        return str(self.strerror)


def _parse_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


class EgressPolicy:
    """The denied networks of `settings.egress.deny`."""

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(network, strict=False) for network in networks
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressPolicy:
        # One policy per deny list: a reload builds a sender per webhook, and parsing
        # the networks again for each of 1,000 webhooks was most of a reload's time.
        return _policy(tuple(settings.egress.deny))

    def is_denied(self, address: str | IPAddress) -> bool:
        """True when `address` (an IP address, not a name) lies in a denied network.

        An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is checked as its IPv4 address
        too, and a scoped IPv6 address (`fe80::1%eth0`) without its scope.
        """
        ip = address if not isinstance(address, str) else _parse_address(address)
        if ip is None:
            return False
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.scope_id:
                candidates.append(ipaddress.IPv6Address(str(ip).split("%", 1)[0]))
            if ip.ipv4_mapped is not None:
                candidates.append(ip.ipv4_mapped)
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self.networks
        )

    def check_host(self, host: str | None) -> None:
        """Raise `EgressDenied` when `host` is an IP literal in a denied network.

        Host names are checked by `DenyingResolver` once they are resolved.
        """
        if host is None or not self.networks:
            return
        ip = _parse_address(host)
        if ip is not None and self.is_denied(ip):
            raise EgressDenied(str(ip))


class DenyingResolver(AbstractResolver):
    """Wraps a resolver and drops every address `policy` denies.

    The default inner resolver is aiohttp's `ThreadedResolver` (the system's
    getaddrinfo, as /etc/hosts and nsswitch say), which holds nothing to close:
    a connector never closes a resolver it was given.
    """

    def __init__(self, policy: EgressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [result for result in results if not self._policy.is_denied(result["host"])]
        if not allowed and results:
            raise EgressDenied(results[0]["host"])
        if len(allowed) < len(results):
            _log.debug(
                "egress_addresses_dropped", host=host, dropped=len(results) - len(allowed)
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def make_connector(settings: Settings, limit: int) -> aiohttp.TCPConnector:
    """A pooled connector (at most `limit` connections) that obeys `egress.deny`.

    Call it with a running event loop; the caller owns the session built on it.
    """
    resolver = DenyingResolver(EgressPolicy.from_settings(settings))
    return aiohttp.TCPConnector(limit=limit, resolver=resolver)


def make_session(settings: Settings, limit: int) -> aiohttp.ClientSession:
    """A session for deliveries over `make_connector` that keeps no cookies: what one
    receiver sets must not come back on later deliveries, of its webhook or of another
    webhook posting to the same host."""
    return aiohttp.ClientSession(connector=make_connector(settings, limit),
                                 cookie_jar=aiohttp.DummyCookieJar())


@functools.lru_cache(maxsize=8)
def _policy(networks: tuple[str, ...]) -> EgressPolicy:
    return EgressPolicy(networks)
