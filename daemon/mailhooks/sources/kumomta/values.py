"""Reading a KumoMTA record's values into an event's fields: each one bounded, None for
anything unusable, and what a batch repeats (its sender, queue, source address) worked
out once."""

from __future__ import annotations

from functools import _lru_cache_wrapper, lru_cache
from typing import Any, Final, TypeVar

from mailhooks.sources import fields as f
from mailhooks.sources.fields import MAX_NAME

T = TypeVar("T")

JSON_TYPES: Final[dict[type, str]] = {
    type(None): "null", bool: "boolean", int: "number", float: "number", str: "string", list: "array",
    dict: "object",
}

CACHED_LENGTH: Final = 400  # the longest string `once` remembers


def once(function: _lru_cache_wrapper[T], value: object) -> T:
    """`function(value)`, remembered for a string a batch repeats (its sender, queue, source
    address), worked out anew for any other value."""
    if type(value) is str and len(value) <= CACHED_LENGTH:
        return function(value)
    return function.__wrapped__(value)


@lru_cache(maxsize=1024)
def sender_domain(sender: object) -> str | None:
    return f.domain_of(f.address(sender))


def campaign_and_tenant(record: dict[str, Any]) -> tuple[str | None, str | None]:
    """From the queue name `campaign:tenant@domain!routing_domain` (each part but the domain
    optional), as KumoMTA's QueueNameComponents::parse splits it; else from the `campaign`
    and `tenant` meta values, when the hook logs them."""
    campaign, tenant = once(_queue_parts, record.get("queue"))
    if campaign is None or tenant is None:
        meta = record.get("meta")
        if isinstance(meta, dict):
            campaign = campaign or f.identifier(meta.get("campaign"), MAX_NAME)
            tenant = tenant or f.identifier(meta.get("tenant"), MAX_NAME)
    return campaign, tenant


@lru_cache(maxsize=1024)
def _queue_parts(queue: object) -> tuple[str | None, str | None]:
    campaign = tenant = None
    if isinstance(queue, str) and "@" in queue:
        prefix = queue.split("@", 1)[0]
        if ":" in prefix:
            campaign, tenant = prefix.split(":", 1)
        else:
            tenant = prefix
    return f.identifier(campaign, MAX_NAME), f.identifier(tenant, MAX_NAME)



def source_ip(value: object) -> str | None:
    """`source_address.address`, a socket address (`10.0.0.1:53210`, `[2001:db8::1]:25`), as
    a bare IP address; None for anything else (a unix socket path, a name)."""
    return once(_socket_ip, value.get("address") if isinstance(value, dict) else None)


@lru_cache(maxsize=1024)
def _socket_ip(value: object) -> str | None:
    address = f.text(value, 100) or ""
    if address.startswith("[") or address.count(":") == 1:  # not a bare IPv6 address
        address = address.rsplit(":", 1)[0]
    return f.ip_address(address)


def dsn_status(value: object) -> str | None:
    """`response.enhanced_code` ({class, subject, detail}) as `class.subject.detail`."""
    if not isinstance(value, dict):
        return None
    status, subject, detail = value.get("class"), value.get("subject"), value.get("detail")
    if type(status) is not int or type(subject) is not int or type(detail) is not int:
        status, subject, detail = integer(status), integer(subject), integer(detail)
        if subject is None or detail is None:
            return None
    if status not in (2, 4, 5) or not 0 <= subject <= 999 or not 0 <= detail <= 999:
        return None
    return f"{status}.{subject}.{detail}"


def integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def scalar(value: object) -> str | int | float | None:
    """A value fit to go into an event id: a string or a number, else None (str() of a deeply
    nested value could exceed the recursion limit)."""
    if type(value) is str or type(value) is int:
        return value
    return value if isinstance(value, str | int | float) and not isinstance(value, bool) else None


def json_type(value: object) -> str:
    return JSON_TYPES.get(type(value), "value")
