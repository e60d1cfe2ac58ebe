"""What every source does to a mail server's values before they become an event's fields:
one line of text, names and ids, addresses, domains, IP addresses, status and reply codes,
times and metadata, each within SPEC §4's bounds so that every event a source builds
validates. Pure: plain values in, plain values (or None) out; nothing here raises.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

from mailhooks.addresses import parse_address
from mailhooks.events import DSN_STATUS_PATTERN

# The bounds of mailhooks.events.Event (SPEC §4).
MAX_EMAIL: Final = 320
MAX_MESSAGE_ID: Final = 998
MAX_NAME: Final = 200  # campaign_id, sending_node, bridge
MAX_DOMAIN: Final = 253
MAX_IP: Final = 45
MAX_LABEL: Final = 100  # bounce_type, complaint_type, metadata keys
MAX_DIAGNOSTIC: Final = 2000
MAX_METADATA_TEXT: Final = 1000
MAX_METADATA_ITEMS: Final = 50
MAX_DETAIL: Final = 200  # a Skipped's detail
LAST_SECOND: Final = 253402300799  # 9999-12-31T23:59:59Z
INT64: Final = 2**63

CONTROL_RUN: Final = re.compile(r"[\x00-\x1f\x7f]+")
SURROGATE: Final = re.compile(r"[\ud800-\udfff]")
FOLDING: Final = re.compile(r"[ \t\r\n]+")
SPACE_RUN: Final = re.compile(r"\s+")
# Event.email's pattern; fullmatch, because Python's `$` also matches before a final newline.
EMAIL: Final = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+")
DSN_STATUS: Final = re.compile(DSN_STATUS_PATTERN)
# An enhanced status code (RFC 3463) inside a text, not part of a longer number or version.
ENHANCED: Final = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")
# …at the start of a field: `5.1.1 (bad destination mailbox address)`, `5.0.0,`.
LEADING_STATUS: Final = re.compile(r"\s*([245]\.\d{1,3}\.\d{1,3})(?!\d|\.\d)")
# A reply code at the start of a diagnostic, after RFC 3464's `type;` (`smtp; 550 5.1.1 …`).
LEADING_CODE: Final = re.compile(r"\s*(?:[A-Za-z][A-Za-z0-9-]*\s*;)?\s*([2-5]\d\d)(?=[\s-]|$)")
# …or where an MTA quotes the remote one: `host mx[192.0.2.1] said: 550 …`.
QUOTED_CODE: Final = re.compile(r"\b(?:said|says):\s*([2-5]\d\d)(?=[\s-]|$)")


# -- text -----------------------------------------------------------------------------


def one_line(value: str, limit: int) -> str:
    """One line of at most `limit` characters: control characters (an embedded CRLF)
    become a space, lone surrogates (stdin decoded with surrogateescape) the replacement
    character. Cut first too, so a huge string costs no more than a short one."""
    if len(value) <= limit and value.isprintable():  # most values: nothing to clean
        return value.strip()
    cleaned = CONTROL_RUN.sub(" ", SURROGATE.sub("\ufffd", value[: limit * 4]))
    return cleaned.strip()[:limit].rstrip()


def folded(value: str, limit: int) -> str:
    """`one_line`, with every run of whitespace (an unfolded header's) one space."""
    return SPACE_RUN.sub(" ", one_line(value, limit * 4)).strip()[:limit].rstrip()


def text(value: object, limit: int) -> str | None:
    """A string as `one_line`, or None when empty or no string."""
    if type(value) is str and len(value) <= limit and value.isprintable():  # most values
        return value.strip() or None
    return (one_line(value, limit) or None) if isinstance(value, str) else None


def identifier(value: object, limit: int) -> str | None:
    """A name or id as one line: folding whitespace (tab, CR, LF) becomes a space; None when
    empty, longer than `limit` or holding another control character, since a cut or mangled
    id would name something else."""
    if not isinstance(value, str) or len(value) > limit * 2:
        return None
    if len(value) <= limit and value.isprintable() and "  " not in value:  # nothing to fold
        return value.strip() or None
    cleaned = FOLDING.sub(" ", SURROGATE.sub("\ufffd", value)).strip()
    if not cleaned or len(cleaned) > limit or CONTROL_RUN.search(cleaned):
        return None
    return cleaned


# -- addresses ------------------------------------------------------------------------


def address(value: object) -> str | None:
    """An address as Event.email takes it (angle brackets dropped), or None."""
    if (type(value) is str and 3 <= len(value) <= MAX_EMAIL and value[0] != "<" and value.isprintable()
            and EMAIL.fullmatch(value)):
        return value  # most values: a bare address already
    found = text(value, MAX_EMAIL + 2)
    if found is None:
        return None
    if found.startswith("<") and found.endswith(">"):
        found = found[1:-1].strip()
    if not 3 <= len(found) <= MAX_EMAIL or not EMAIL.fullmatch(found):
        return None
    return found


def domain_of(sender: str | None) -> str | None:
    """The domain of an address (lowercased, without a final dot), or None."""
    if not sender or "@" not in sender:
        return None
    domain = sender.rsplit("@", 1)[1].strip().rstrip(".").lower()
    return domain if 0 < len(domain) <= MAX_DOMAIN else None


def ip_address(value: object) -> str | None:
    """An IP address as mailhooks' filters compare them: an IPv4-mapped IPv6 address as
    IPv4; None for an unspecified one (0.0.0.0: a proxy that did not say) or no address."""
    return _ip_address(value) if isinstance(value, str) and len(value) <= 100 else None


@lru_cache(maxsize=4096)  # a host sends from a few addresses, over and over
def _ip_address(value: str) -> str | None:
    found = one_line(value, 100)
    ip = parse_address(found) if found else None
    if ip is None:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    shown = str(ip)
    return shown if not ip.is_unspecified and len(shown) <= MAX_IP else None


# -- codes ----------------------------------------------------------------------------


def dsn_status(value: object) -> str | None:
    """A value that is an enhanced status code and nothing else (`5.1.1`), or None."""
    return value if isinstance(value, str) and DSN_STATUS.fullmatch(value) else None


def leading_status(value: str | None) -> str | None:
    """The status code a field starts with: `5.1.1 (bad destination mailbox address)`."""
    match = LEADING_STATUS.match(value or "")
    return match.group(1) if match else None


def status_in(value: str | None) -> str | None:
    """The first enhanced status code anywhere in a diagnostic text."""
    match = ENHANCED.search(value or "")
    return match.group(1) if match else None


def reply_code(diagnostic: str | None) -> int | None:
    """The SMTP reply code of a diagnostic: at its start (`smtp; 550 5.1.1 …`), else
    after `said:` (`host mx[192.0.2.1] said: 550-5.1.1 …`)."""
    match = LEADING_CODE.match(diagnostic or "") or QUOTED_CODE.search(diagnostic or "")
    return int(match.group(1)) if match else None


def bounce_type(status: str | None, code: int | None) -> str:
    """A bounce no category explains: `soft` on a temporary status (4.X.X, or a 4XX reply
    when there is no status), else `hard`, since the MTA gave up on the address."""
    if status is not None:
        return "soft" if status.startswith("4") else "hard"
    return "soft" if code is not None and 400 <= code < 500 else "hard"


# -- times ----------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    """An aware time as ISO 8601 in UTC, `Z` for the offset."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def unix_text(value: object) -> str | None:
    """Unix seconds as ISO 8601 in UTC (`iso`), or None as `unix_time` says."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _unix_text(value)
    moment = unix_time(value)
    return iso(moment) if moment else None


@lru_cache(maxsize=1024)  # the records of a batch share their seconds
def _unix_text(seconds: int) -> str | None:
    moment = unix_time(seconds)
    return iso(moment) if moment else None


def unix_time(value: object) -> datetime | None:
    """Unix seconds as a time; None when they are no number within years 1970-9999."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= LAST_SECOND:
        return None  # NaN fails the range check too
    return datetime.fromtimestamp(value, UTC)


# -- the event ------------------------------------------------------------------------


def metadata_value(value: object) -> str | int | float | bool | None:
    """A value Event.metadata takes: a bounded scalar, or None."""
    if type(value) is str and len(value) <= MAX_METADATA_TEXT and value.isprintable():
        return value.strip() or None  # most values: nothing to clean
    if isinstance(value, str):
        return one_line(value, MAX_METADATA_TEXT) or None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -INT64 <= value < INT64 else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None


@lru_cache(maxsize=4096)
def metadata_key(key: str) -> bool:
    """Whether `key` may name a metadata value as it is: one short line, not blank."""
    return bool(key) and one_line(key, MAX_LABEL) == key


def metadata(items: Iterable[tuple[str, object]]) -> dict[str, Any] | None:
    """Event.metadata of (key, value) pairs, the first of each key, bounded like it: a key
    that is no short line, or a value that is no scalar, is left out."""
    found: dict[str, Any] = {}
    for key, value in items:
        if value is None or key in found or not isinstance(key, str) or not metadata_key(key):
            continue
        if type(value) is str and len(value) <= MAX_METADATA_TEXT and value.isprintable():
            clean: object = value.strip() or None  # most values: nothing to clean
        else:
            clean = metadata_value(value)
        if clean is not None:
            found[key] = clean
            if len(found) == MAX_METADATA_ITEMS:
                break
    return found or None


def compact(fields: Mapping[str, Any]) -> dict[str, Any]:
    """An event without the fields it lacks (None, or an empty metadata)."""
    return {name: value for name, value in fields.items() if value is not None and value != {}}
