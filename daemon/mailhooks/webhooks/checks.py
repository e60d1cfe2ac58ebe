"""What a webhook must satisfy beyond its schema: rules that need code, or the daemon's config."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import urlsplit

from mailhooks.webhooks.schema import SchemaProblem
from mailhooks.webhooks.secrets import HOW_TO_REFERENCE, contains_reference, is_reference

# Header names whose values are credentials: these must be references, never literals.
_CREDENTIAL_HEADER: Final = re.compile(
    r"authorization|cookie|token|secret|password|passwd|api[-_]?key|auth|signature|session",
    re.IGNORECASE,
)
_RESERVED_HEADERS: Final = frozenset({
    "content-type", "content-length", "host", "transfer-encoding", "connection",
    "webhook-id", "webhook-timestamp", "webhook-signature",
})
_ANY_REFERENCE: Final = re.compile(r"\$\{([^}]*)\}")


def check(data: dict[str, Any], *, allow_http: bool) -> Iterator[SchemaProblem]:
    """Problems the schema cannot see. Runs beside the schema, so it takes nothing for
    granted about the document's shape and skips what the schema already reports."""
    events = data.get("events")
    if isinstance(events, list):
        seen: set[Any] = set()
        for index, name in enumerate(events):
            if isinstance(name, str) and name in seen:
                yield SchemaProblem(("events", index), f"events[{index}]: {name!r} is listed twice")
            seen.add(name if isinstance(name, str) else None)
    filters = data.get("filters")
    networks = filters.get("dedicated_ip") if isinstance(filters, dict) else None
    if isinstance(networks, list):
        for index, value in enumerate(networks):
            if isinstance(value, str) and not _is_network(value):
                yield SchemaProblem(
                    ("filters", "dedicated_ip", index),
                    f"filters.dedicated_ip[{index}]: {value!r} is not an IP address or CIDR range "
                    "(192.0.2.10, 198.51.100.0/28, 2001:db8::/32)",
                )
    channel = data.get("channel")
    if isinstance(channel, dict) and channel.get("type") == "web":
        if isinstance(channel.get("url"), str):
            yield from _check_url(channel["url"], allow_http=allow_http)
        if isinstance(channel.get("headers"), dict):
            yield from _check_headers(channel["headers"])


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _check_url(url: str, *, allow_http: bool) -> Iterator[SchemaProblem]:
    where = ("channel", "url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as error:
        yield SchemaProblem(where, f"channel.url: not a valid URL ({error})")
        return
    scheme = parts.scheme.lower()
    if scheme == "http" and not allow_http:
        yield SchemaProblem(
            where,
            "channel.url: plain http is not allowed; use https, "
            "or set allow_http: true in the daemon's config",
        )
    if not parts.hostname:
        yield SchemaProblem(where, "channel.url: no host name")
    if parts.username or parts.password:
        yield SchemaProblem(
            where, "channel.url: no credentials in the URL; send them in headers as references"
        )
    if parts.fragment:
        yield SchemaProblem(where, "channel.url: a URL fragment (#…) is never sent; remove it")
    if contains_reference(url):
        yield SchemaProblem(where, "channel.url: no secret references in the URL; use headers")


def _check_headers(headers: dict[str, str]) -> Iterator[SchemaProblem]:
    for name, value in headers.items():
        where = ("channel", "headers", name)
        if name.lower() in _RESERVED_HEADERS:
            yield SchemaProblem(
                where, f"channel.headers.{name}: set by mailhooks, cannot be configured",
                at_key=True,
            )
            continue
        if not isinstance(value, str):
            continue
        unknown = [ref[0] for ref in _ANY_REFERENCE.finditer(value) if not is_reference(ref[0])]
        for reference in unknown:
            yield SchemaProblem(
                where, f"channel.headers.{name}: {reference} is not a reference mailhooks "
                f"knows; {HOW_TO_REFERENCE}",
            )
        # An unknown reference is reported above; calling it a literal too would be noise.
        if _CREDENTIAL_HEADER.search(name) and not unknown and not contains_reference(value):
            yield SchemaProblem(
                where, f"channel.headers.{name}: a literal credential is not allowed; "
                f"{HOW_TO_REFERENCE}",
            )
