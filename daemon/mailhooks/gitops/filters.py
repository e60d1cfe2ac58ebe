"""Whether a webhook's filters widened or narrowed: for `mailhooks diff`'s effect lines.

A webhook's filters are a conjunction: an event passes when, for every filter set, its
value is one the filter accepts (`mailhooks.match`). So the filters as a whole accept an
event they refused before exactly when one filter does: each is compared alone. A filter
not set accepts every value, and an event without one; a set filter accepts only what its
values match: a domain, or its subdomains for `*.example.org` (case and a final dot
ignored); an address, or the addresses of a CIDR range; the very value for the others.

What the filters accept is known from the files, how many events that is is not: the
effect lines say events *may* newly reach a destination, or *may* stop reaching it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from mailhooks.addresses import IPNetwork, parse_network
from mailhooks.events import FILTER_FIELDS
from mailhooks.webhooks.models import Filters


def _domain(value: str) -> str:
    return value.strip().rstrip(".").lower()


def _domain_within(value: str, outer: Sequence[str]) -> bool:
    """Whether every sending domain `value` matches, one of `outer` matches too."""
    domain = _domain(value)
    patterns = [_domain(pattern) for pattern in outer]
    # `*.example.org` as its suffix `.example.org`: it matches the names ending so.
    suffixes = [pattern[1:] for pattern in patterns if pattern.startswith("*.")]
    if domain.startswith("*."):
        return any(domain[1:].endswith(suffix) for suffix in suffixes)
    return domain in patterns or any(domain.endswith(suffix) for suffix in suffixes)


def _networks_within(inner: Sequence[str], outer: Sequence[str]) -> bool:
    """Whether every address of `inner` is in one of `outer`'s addresses and ranges (taken
    together: two halves cover the whole)."""
    wide = [parse_network(value) for value in outer]
    merged: list[IPNetwork] = [
        *ipaddress.collapse_addresses(n for n in wide if isinstance(n, ipaddress.IPv4Network)),
        *ipaddress.collapse_addresses(n for n in wide if isinstance(n, ipaddress.IPv6Network)),
    ]
    return all(any(_subnet(parse_network(value), network) for network in merged) for value in inner)


def _subnet(network: IPNetwork, of: IPNetwork) -> bool:
    if isinstance(network, ipaddress.IPv4Network) and isinstance(of, ipaddress.IPv4Network):
        return network.subnet_of(of)
    if isinstance(network, ipaddress.IPv6Network) and isinstance(of, ipaddress.IPv6Network):
        return network.subnet_of(of)
    return False


def _values(filters: Filters | None, field: str) -> list[str] | None:
    values: list[str] | None = getattr(filters, field) if filters is not None else None
    return values or None


def _within(field: str, inner: list[str] | None, outer: list[str] | None) -> bool:
    """Whether the filter `outer` accepts every event the filter `inner` accepts (None: the
    filter is not set)."""
    if outer is None:
        return True
    if inner is None:
        return False
    if field == "sending_domain":
        return all(_domain_within(value, outer) for value in inner)
    if field == "dedicated_ip":
        return _networks_within(inner, outer)
    return set(inner) <= set(outer)


def widened(old: Filters | None, new: Filters | None) -> list[str]:
    """The filters (by field) that accept in `new` an event they refused in `old`: a filter
    removed, a value added, a range widened."""
    return [field for field in FILTER_FIELDS
            if not _within(field, _values(new, field), _values(old, field))]


def narrowed(old: Filters | None, new: Filters | None) -> list[str]:
    """The filters (by field) that refuse in `new` an event they accepted in `old`: a
    filter added, a value removed, a range narrowed."""
    return widened(new, old)
