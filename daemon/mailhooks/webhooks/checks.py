"""What a webhook must satisfy beyond its schema: rules that need code, or the daemon's config."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mailhooks.addresses import NETWORK_EXAMPLES, is_network
from mailhooks.channels import registry
from mailhooks.channels.base import CheckOptions
from mailhooks.documents.positions import SchemaProblem


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
            if isinstance(value, str) and not is_network(value):
                yield SchemaProblem(
                    ("filters", "dedicated_ip", index),
                    f"filters.dedicated_ip[{index}]: {value!r} is not an IP address or CIDR range "
                    f"({NETWORK_EXAMPLES})",
                )
    channel = data.get("channel")
    if isinstance(channel, dict) and isinstance(channel.get("type"), str):
        kind = registry.kinds().get(channel["type"])
        if kind is not None and kind.check is not None:
            yield from kind.check(channel, CheckOptions(allow_http=allow_http))
