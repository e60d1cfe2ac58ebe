"""[in] Bounces and complaints that arrive by mail → events (SPEC §8): `mailhooks ingest dsn`.

`parse_message(raw)` takes one message, as the MTA's pipe transport on the return path
hands it over, and reads the machine-readable part of it:

* a delivery status notification (RFC 3464: `multipart/report;
  report-type=delivery-status`, with a `message/delivery-status` part; RFC 6533's
  `message/global-delivery-status` too) gives one event per recipient block:
  `Action: failed` → `bounced`, `delayed` → `delayed`; `delivered`, `relayed` and
  `expanded` are no events (each a `Skipped` of kind `action:delivered`…). A block
  without `Action` takes it from its `Status` class (5 failed, 4 delayed, 2 delivered).
* a feedback report (ARF, RFC 5965: `report-type=feedback-report`, with a
  `message/feedback-report` part) gives one `complaint`. `Feedback-Type: auth-failure`
  (RFC 6591, DMARC's failure reports) is no complaint: a `Skipped` of kind
  `feedback:auth-failure`.

The report part is found by its content type among the parts of the top-level multipart
(or of a multipart inside it, two levels down, for reports a gateway wrapped), so a report
whose `report-type` parameter is missing or wrong still reads. Anything else is a
`Skipped`: a bounce in plain text (kind `unstructured-bounce`, when it comes from
MAILER-DAEMON or postmaster or says it is undelivered mail), another kind of report
(`report-type:disposition-notification`, a read receipt; `report-type:other` for a type
of no known name), any other message (`not-a-report`). `SKIP_KINDS` lists every kind.

What a DSN's event holds is in the doc of `delivery`, a complaint's in that of `feedback`;
`mime` reads the message's parts and field values for both.

`event_id` is `derive_event_id("dsn", …)` over the report's Message-ID, reporting MTA,
envelope id, queue id, recipient, action, status, original Message-ID and dates: the same
message piped twice gives the same ids.

Hostile input
-------------
`parse_message` never raises. It refuses, as a `Skipped`, a message over 10 MiB
(`too-large`), with over 1,000 lines that start with `--` (`too-many-parts`: parsing
costs about 0.1 ms a part) or over 1,000 recipient fields (`too-many-recipients`); a
multipart whose boundary never appears, a report part that is no text, undecodable bytes
and the like end as `malformed` or `no-status-part`, never as an exception. Texts are
cut to the bounds of SPEC §4.
"""
from __future__ import annotations

import email.policy
import re
from email.message import Message
from email.parser import BytesParser
from typing import Final

from mailhooks.sources.dsn.delivery import bounces
from mailhooks.sources.dsn.feedback import complaint, jmrp_original
from mailhooks.sources.dsn.mime import SOURCE, children, clean, content_type, find_report, header_fields
from mailhooks.sources.fields import MAX_DIAGNOSTIC as MAX_DIAGNOSTIC_CHARS
from mailhooks.sources.records import Parsed, skip

MAX_MESSAGE_BYTES: Final = 10 * 1024 * 1024
MAX_BOUNDARY_LINES: Final = 1_000
MAX_RECIPIENT_FIELDS: Final = 1_000

# Every kind of Skipped this source gives: a short, stable set, counted and logged once each.
SKIP_KINDS: Final = frozenset({
    "malformed", "too-large", "too-many-parts", "too-many-recipients", "not-a-report", "unstructured-bounce",
    "no-status-part", "no-recipients", "report-type:disposition-notification",
    "report-type:global-disposition-notification", "report-type:tlsrpt", "report-type:other",
    "recipient:not-an-address", "action:delivered", "action:relayed", "action:expanded", "action:unknown",
    "feedback:auth-failure", "complaint:no-recipient", "invalid-event",
})

_BOUNDARY_LINE: Final = re.compile(rb"^--", re.MULTILINE)
_RECIPIENT_FIELD: Final = re.compile(rb"^(?:final|original)-recipient[ \t]*:", re.MULTILINE | re.IGNORECASE)
_BOUNCE_SENDER: Final = re.compile(r"mailer-daemon|postmaster|mail delivery", re.IGNORECASE)
_BOUNCE_SUBJECT: Final = re.compile(
    r"undeliver|undelivered|delivery (?:status|failure|has failed)|failure notice|returned mail"
    r"|could not be delivered|mail delivery failed", re.IGNORECASE)
_REPORT_TYPES: Final = frozenset({"delivery-status", "global-delivery-status", "feedback-report"})
_OTHER_REPORT_TYPES: Final = frozenset(
    {"disposition-notification", "global-disposition-notification", "tlsrpt"})

__all__ = ["MAX_BOUNDARY_LINES", "MAX_DIAGNOSTIC_CHARS", "MAX_MESSAGE_BYTES", "MAX_RECIPIENT_FIELDS",
           "SKIP_KINDS", "SOURCE", "parse_message"]


def parse_message(raw: bytes | bytearray | memoryview) -> Parsed:
    """The events of one DSN or ARF message; whatever it is not, a `Skipped`. Never
    raises."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        return skip("malformed", f"a {type(raw).__name__}, not the bytes of a message")
    raw = bytes(raw)
    if len(raw) > MAX_MESSAGE_BYTES:
        return skip("too-large", f"{len(raw)} bytes: over the {MAX_MESSAGE_BYTES} a report may have")
    for count, _ in enumerate(_BOUNDARY_LINE.finditer(raw), start=1):
        if count > MAX_BOUNDARY_LINES:
            return skip("too-many-parts", f"over {MAX_BOUNDARY_LINES} lines that start with --")
    for count, _ in enumerate(_RECIPIENT_FIELD.finditer(raw), start=1):
        if count > MAX_RECIPIENT_FIELDS:
            return skip("too-many-recipients", f"over {MAX_RECIPIENT_FIELDS} recipient fields")
    try:
        return _parse(raw)
    except Exception as error:  # hostile MIME is a record to skip, never a crash
        return skip("malformed", f"{type(error).__name__} while reading the message")


def _parse(raw: bytes) -> Parsed:
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    top = header_fields(message.raw_items())
    found = find_report(message)
    if found is None:
        return _not_a_report(message, top)
    kind, parts = found
    return complaint(top, parts) if kind == "arf" else bounces(top, parts)


def _not_a_report(message: Message, top: dict[str, str]) -> Parsed:
    kind = content_type(message)
    parts = children(message)
    if message.get_content_maintype().lower() == "multipart" and not parts:
        return skip("malformed", f"a {kind} without its parts (no boundary, or it never appears)")
    if kind == "multipart/report":
        report_type = clean(str(message.get_param("report-type") or "none"), 60).lower()
        if report_type in _REPORT_TYPES:
            return skip("no-status-part", f"a {report_type} report without its {report_type} part")
        # The kind is counted and logged once: only known words make it, not any text.
        known = report_type if report_type in _OTHER_REPORT_TYPES else "other"
        return skip(f"report-type:{known}", f"a multipart/report of type {report_type}")
    jmrp = jmrp_original(top, parts)
    if jmrp is not None:
        return jmrp
    sender, subject = top.get("from", ""), top.get("subject", "")
    if _BOUNCE_SENDER.search(sender) or _BOUNCE_SUBJECT.search(subject):
        return skip("unstructured-bounce", f"a {kind} bounce with no RFC 3464 report: {subject[:80]!r}")
    return skip("not-a-report", f"a {kind} message, neither a DSN nor an ARF report")
