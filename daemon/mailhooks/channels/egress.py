"""Where deliveries may not go (SPEC §5), checked on the address actually connected to.

A webhook's URL names a host; DNS decides where that host is, and DNS can change its
answer between a check and a connection (DNS rebinding). So the rule is applied inside
the connector, on every address the resolver returns: `DenyingResolver` drops the denied
ones and fails when none is left. aiohttp does not ask the resolver about IP-literal
hosts (`https://127.0.0.1/`), so senders call `EgressPolicy.check_host` before sending.

Loopback, unspecified and link-local addresses are always denied (`BUILT_IN_DENY`), in
their IPv4-mapped forms too: `egress.deny` adds ranges to that list and can never reopen
one; only `egress.allow` makes an exception, one range at a time.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import socket
from collections.abc import Iterable
from typing import Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from mailhooks import log
from mailhooks.addresses import IPAddress, IPNetwork, parse_address, parse_network
from mailhooks.settings import Settings

_log = log.get(__name__)

# SPEC §5's list: loopback, unspecified (Linux connects 0.0.0.0 and :: to the local
# host) and link-local, IPv4 and IPv6. IPv4-mapped IPv6 addresses are checked as IPv4.
BUILT_IN_DENY: Final = (
    "127.0.0.0/8", "0.0.0.0/8", "169.254.0.0/16", "::1/128", "::/128", "fe80::/10",
)


class EgressDenied(OSError):
    """A connection to an address that the egress rules forbid.

    An `OSError` so that aiohttp's connector wraps it as a connection error; its
    `strerror` is the one-line reason.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__(errno.EACCES, f"address {address} is denied by the egress rules")

    def __str__(self) -> str:
        return str(self.strerror)


def _candidates(ip: IPAddress) -> list[IPAddress]:
    """The address, and the forms it also is: the IPv4 address of an IPv4-mapped IPv6
    one (`::ffff:127.0.0.1`), a scoped address without its scope (`fe80::1%eth0`)."""
    found: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            found.append(ipaddress.IPv6Address(str(ip).split("%", 1)[0]))
        if ip.ipv4_mapped is not None:
            found.append(ip.ipv4_mapped)
    return found


def _within(ip: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(
        candidate.version == network.version and candidate in network
        for candidate in _candidates(ip)
        for network in networks
    )


class EgressPolicy:
    """The built-in denied ranges plus `deny`, with `allow`'s exceptions."""

    def __init__(self, deny: Iterable[str] = (), allow: Iterable[str] = ()) -> None:
        self.denied: tuple[IPNetwork, ...] = tuple(
            parse_network(text) for text in (*BUILT_IN_DENY, *deny)
        )
        self.allowed: tuple[IPNetwork, ...] = tuple(parse_network(text) for text in allow)

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressPolicy:
        # One policy per rule set: a reload builds a sender per webhook, and parsing the
        # networks again for each of 1,000 webhooks was most of a reload's time.
        return _policy(tuple(settings.egress.deny), tuple(settings.egress.allow))

    def is_denied(self, address: str | IPAddress) -> bool:
        """True when `address` (an IP address, not a name) may not be connected to."""
        ip = address if not isinstance(address, str) else parse_address(address)
        if ip is None:
            return False
        return _within(ip, self.denied) and not _within(ip, self.allowed)

    def check_host(self, host: str | None) -> None:
        """Raise `EgressDenied` when `host` is an IP literal that may not be connected to.

        Host names are checked by `DenyingResolver` once they are resolved.
        """
        if host is None:
            return
        ip = parse_address(host)
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
    """A pooled connector (at most `limit` connections) that obeys the egress rules.

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
def _policy(deny: tuple[str, ...], allow: tuple[str, ...]) -> EgressPolicy:
    return EgressPolicy(deny, allow)
