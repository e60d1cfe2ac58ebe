"""IP addresses and networks as mailhooks reads them: filters, egress rules, the config."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
NETWORK_EXAMPLES: Final = "192.0.2.10, 198.51.100.0/28, 2001:db8::/32"


def network(text: str) -> str:
    """`text` if it is an IP address or CIDR range; else a ValueError saying so. A
    pydantic `AfterValidator` for every field that holds one."""
    try:
        ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP address or CIDR range ({NETWORK_EXAMPLES})"
        ) from None
    return text


def is_network(text: str) -> bool:
    try:
        network(text)
    except ValueError:
        return False
    return True


def parse_network(text: str) -> IPNetwork:
    return ipaddress.ip_network(text.strip(), strict=False)


@lru_cache(maxsize=4096)
def parse_address(text: str) -> IPAddress | None:
    """The address in `text` (`[::1]` and `fe80::1%eth0` too), or None when it is none."""
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
