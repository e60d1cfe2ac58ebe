"""Reading a report message: its parts, the blocks of fields of a report part, the
returned message's headers, and the field values reports use (`type; value`, addresses,
Message-IDs, dates). What the fields mean is `delivery`'s and `feedback`'s."""

from __future__ import annotations

import base64
import email.policy
import quopri
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any, Final

from mailhooks.sources import fields as f
from mailhooks.sources.fields import MAX_MESSAGE_ID
from mailhooks.sources.ids import derive_event_id

SOURCE: Final = "dsn"
MAX_SEARCH_DEPTH: Final = 2
MAX_FIELD_CHARS: Final = 10_000
DSN_TYPES: Final = frozenset({"message/delivery-status", "message/global-delivery-status"})
ARF_TYPES: Final = frozenset({"message/feedback-report"})
RETURNED_MESSAGE_TYPES: Final = frozenset({"message/rfc822", "message/global"})
RETURNED_HEADERS_TYPES: Final = frozenset({"text/rfc822-headers", "message/global-headers"})
ADDRESS_TYPES: Final = frozenset({"rfc822", "utf-8"})

_BLANK_LINES: Final = re.compile(rb"(?:\r?\n[ \t]*){2,}")
_ANGLED: Final = re.compile(r"<([^<>\s]+)>")


def clean(text: str, limit: int) -> str:
    """One line of valid text of at most `limit` characters, whitespace runs one space.
    The parser keeps bytes that are no ASCII as surrogates: they are decoded as UTF-8
    here, else replaced."""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    return f.folded(text, limit)


def header_fields(items: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """A header block as lowercased name → unfolded value (the first of each name)."""
    found: dict[str, str] = {}
    for name, value in items:
        key = str(name).strip().lower()
        if key and key not in found:
            found[key] = clean(str(value)[:MAX_FIELD_CHARS], MAX_FIELD_CHARS)
    return found


def _header_block(data: bytes) -> dict[str, str]:
    return header_fields(BytesHeaderParser(policy=email.policy.default).parsebytes(data).raw_items())


def content_type(part: Message) -> str:
    return part.get_content_type().lower()


def children(part: Message) -> list[Message]:
    payload = part.get_payload()
    if not isinstance(payload, list):
        return []
    return [child for child in payload if isinstance(child, Message)]


def field_blocks(part: Message) -> list[dict[str, str]]:
    """The blocks of fields of a `message/delivery-status`, `message/global-delivery-status`
    or `message/feedback-report` part. The parser reads the first as a list of header
    blocks and the others as a message (the first block its headers, the rest its body),
    and decodes no transfer encoding of such a part (one should not be there, but
    sometimes is): the part's bytes are put together again, decoded, and read block by
    block here."""
    parts = children(part)
    if parts:
        data = b"\n\n".join(_block_bytes(child) for child in parts)
        encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
        if encoding == "base64":
            data = _lenient_base64(data)
        elif encoding == "quoted-printable":
            data = quopri.decodestring(data)
    else:
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
    blocks = [_header_block(block.strip(b"\r\n")) for block in _BLANK_LINES.split(data) if block.strip()]
    return [block for block in blocks if block]


def _lenient_base64(data: bytes) -> bytes:
    """Base64 as a mail reader decodes it: other characters ignored, padding made up,
    a dangling last character dropped."""
    digits = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    digits = digits[:len(digits) - 1] if len(digits) % 4 == 1 else digits
    return base64.b64decode(digits + b"=" * (-len(digits) % 4))


def _block_bytes(block: Message) -> bytes:
    """A parsed block as the bytes it was read from: its header lines, then its body."""
    head = b"".join(_encoded(f"{name}: {value}\n") for name, value in block.raw_items())
    body = block.get_payload(decode=True)
    return head + (b"\n" + body if isinstance(body, bytes) and body.strip() else b"")


def _encoded(text: str) -> bytes:
    """Text from the parser back to its bytes (it keeps bytes that are no ASCII as
    surrogates)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeError:
        return text.encode("utf-8", "replace")


def returned_headers(parts: list[Message]) -> dict[str, str]:
    """The headers of the returned message: a `message/rfc822` part (whole) or a
    `text/rfc822-headers` part (headers only)."""
    for child in parts:
        kind = content_type(child)
        if kind not in RETURNED_MESSAGE_TYPES and kind not in RETURNED_HEADERS_TYPES:
            continue
        inner = children(child)
        if inner:
            return header_fields(inner[0].raw_items())
        data = child.get_payload(decode=True)
        if isinstance(data, bytes):
            return _header_block(data)
    return {}


def find_report(message: Message) -> tuple[str, list[Message]] | None:
    """The parts of the multipart that holds a report part, breadth first, down to
    MAX_SEARCH_DEPTH, and which report it is: ("dsn" | "arf", the parts)."""
    queue: list[tuple[Message, int]] = [(message, 0)]
    while queue:
        part, depth = queue.pop(0)
        if part.get_content_maintype().lower() != "multipart":
            continue
        parts = children(part)
        kinds = {content_type(child) for child in parts}
        if kinds & DSN_TYPES:
            return "dsn", parts
        if kinds & ARF_TYPES:
            return "arf", parts
        if depth < MAX_SEARCH_DEPTH:
            queue.extend((child, depth + 1) for child in parts)
    return None


# -- field values ---------------------------------------------------------------------


def typed_value(value: str | None) -> tuple[str, str] | None:
    """`type; value` (Final-Recipient, Reporting-MTA, Diagnostic-Code…) as (type, value)."""
    if not value:
        return None
    kind, sign, rest = value.partition(";")
    if not sign:
        return None
    return kind.strip().lower(), rest.strip()


def typed_address(value: str | None) -> str | None:
    typed = typed_value(value)
    if typed is None or typed[0] not in ADDRESS_TYPES:
        return None
    return plain_address(typed[1])


def plain_address(value: str | None) -> str | None:
    """The address in a field (in angle brackets or bare), as Event.email takes it."""
    found = (value or "").strip()
    angled = _ANGLED.search(found)
    if angled:
        found = angled.group(1)
    # An address whose bytes were no UTF-8 is no address anyone can match: the other
    # field (Original-Recipient) is tried instead.
    if "\ufffd" in found:
        return None
    return f.address(found.strip().strip("<>").strip())


def header_addresses(value: str | None) -> list[str]:
    if not value:
        return []
    found = (plain_address(address) for _, address in getaddresses([value]) if address)
    return [address for address in found if address]


def single_address(value: str | None) -> str | None:
    addresses = header_addresses(value)
    return addresses[0] if len(addresses) == 1 else None


def message_id(value: str | None) -> str | None:
    """A Message-ID field's id, without angle brackets."""
    if not value:
        return None
    angled = _ANGLED.search(value)
    found = angled.group(1) if angled else value.strip().split(" ")[0].strip("<>")
    return clean(found, MAX_MESSAGE_ID) or None


def synthetic_id(kind: str, *parts: str | None) -> str:
    """A stand-in Message-ID, stable for the report: `KIND-HASH@mailhooks.invalid`."""
    return f"{kind}-{derive_event_id(SOURCE, kind, *parts)[-16:]}@mailhooks.invalid"


def date(value: str | None) -> datetime | None:
    """An RFC 5322 date in UTC (one without a zone taken as UTC); None when it is none or
    outside years 1970-9999."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if not 1970 <= moment.year <= 9999:
        return None
    return moment


def iso(moment: datetime | None) -> str | None:
    return f.iso(moment) if moment else None


def metadata(**values: str | None) -> dict[str, Any] | None:
    """Event.metadata of the values given, each under its name."""
    return f.metadata(values.items())
