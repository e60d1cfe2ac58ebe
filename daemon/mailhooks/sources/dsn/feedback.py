"""Feedback reports (ARF, RFC 5965) → `complaint` events, and Microsoft JMRP's report
that is no ARF (the search for the report part is in the doc of `mailhooks.sources.dsn`).

Fields of a complaint
---------------------
* `complaint_type`: `Feedback-Type`, lowercased (`abuse`, `fraud`, `virus`, `other`,
  `not-spam`: a `not-spam` report is passed on as it is, for the receiver to tell
  apart); absent when the report has none.
* `email`: `Original-Rcpt-To` (the envelope recipient), else the returned message's
  `X-HmXmrOriginalRecipient` (Microsoft's JMRP often carries the address only there),
  else its `To` when it names exactly one address, else the obsolete
  `Removal-Recipient`. A redacted address (`redacted@…`, `xxxxx@…`) counts as none, and a
  report that names none is a `Skipped` (`complaint:no-recipient`).
* `message_id`: the returned message's `Message-ID`, else `arf-HASH@mailhooks.invalid`
  (as for a DSN).
* `sending_domain`: `Original-Mail-From`, else the returned `Return-Path`, else `From`.
* `dedicated_ip`: `Source-IP`, the address the reported message came from: the sending
  IP (when it is an IP address).
* `timestamp`: the report's `Date`, when the user complained; `Arrival-Date` (when the
  reported message arrived) only when the report has no date; it is kept in
  `metadata.arrival_date`. `metadata` also has `user_agent`, `reporting_mta`,
  `reported_domain` and `feedback_source` (Return Path's `Source: Comcast`) when given.

JMRP's other format forwards the complained-of message itself, no report part: a
message that is no report but carries `X-HmXmrOriginalRecipient` (in its own headers or
in an attached `message/rfc822`) is taken as a complaint of type `abuse` from it.
"""

from __future__ import annotations

import re
from email.message import Message
from typing import Final

from mailhooks.sources import fields as f
from mailhooks.sources.dsn.mime import (
    ARF_TYPES,
    SOURCE,
    content_type,
    date,
    field_blocks,
    iso,
    message_id,
    metadata,
    plain_address,
    returned_headers,
    single_address,
    synthetic_id,
    typed_value,
)
from mailhooks.sources.ids import derive_event_id
from mailhooks.sources.records import Parsed, checked, skip

REDACTED: Final = re.compile(r"redacted|[x*#.]+|undisclosed[-_ ]?recipients?", re.IGNORECASE)
JMRP_RECIPIENT: Final = "x-hmxmroriginalrecipient"


def complaint(top: dict[str, str], parts: list[Message]) -> Parsed:
    """The complaint of an ARF report: `top` its headers, `parts` those of its multipart."""
    report_part = next(child for child in parts if content_type(child) in ARF_TYPES)
    report: dict[str, str] = {}
    for block in field_blocks(report_part):
        for name, value in block.items():
            report.setdefault(name, value)
    if not report:
        return skip("no-status-part", "the feedback-report part has no fields")
    return complaint_from(top, report, returned_headers(parts))


def jmrp_original(top: dict[str, str], parts: list[Message]) -> Parsed | None:
    """JMRP's "original" format: the complained-of message forwarded, no report part, the
    recipient in `X-HmXmrOriginalRecipient`; None when the message is not one."""
    for headers in (top, returned_headers(parts)):
        if unredacted(plain_address(headers.get(JMRP_RECIPIENT))):
            return complaint_from(top, {"feedback-type": "abuse"}, headers)
    return None


def complaint_from(top: dict[str, str], report: dict[str, str], returned: dict[str, str]) -> Parsed:
    """The complaint of a report's fields and the returned message's headers."""
    feedback_type = f.folded(report.get("feedback-type", ""), f.MAX_LABEL).lower() or None
    if feedback_type == "auth-failure":
        return skip("feedback:auth-failure", "an authentication failure report (RFC 6591), not a complaint")
    recipient = _complainant(report, returned)
    if recipient is None:
        return skip("complaint:no-recipient", "the report names no recipient (redacted?)")
    report_id = message_id(top.get("message-id"))
    original_id = message_id(returned.get("message-id")) or synthetic_id(
        "arf", report_id, report.get("reporting-mta"), top.get("date"), report.get("arrival-date"),
        report.get("original-mail-from"), recipient)
    sender = (plain_address(report.get("original-mail-from"))
              or single_address(returned.get("return-path"))
              or single_address(returned.get("from")))
    report_date = date(top.get("date"))
    arrival_text = report.get("arrival-date") or report.get("received-date")
    arrival = date(arrival_text)
    source_ip = f.ip_address(report.get("source-ip"))
    reporting = typed_value(report.get("reporting-mta"))
    return Parsed().add(checked({
        "event": "complaint",
        "timestamp": iso(report_date or arrival),
        "email": recipient,
        "message_id": original_id,
        "event_id": derive_event_id(SOURCE, "feedback", report_id, feedback_type, recipient, original_id,
                                    iso(report_date), iso(arrival), source_ip),
        "sending_domain": f.domain_of(sender),
        "dedicated_ip": source_ip,
        "complaint_type": feedback_type,
        "metadata": metadata(
            user_agent=report.get("user-agent"), reporting_mta=reporting[1] if reporting else None,
            reported_domain=report.get("reported-domain"), feedback_source=report.get("source"),
            arrival_date=iso(arrival) or arrival_text),
    }))


def unredacted(address: str | None) -> str | None:
    """The address, unless its local part is a placeholder (`redacted`, `xxxxx`)."""
    if address is None or REDACTED.fullmatch(address.rsplit("@", 1)[0]):
        return None
    return address


def _complainant(report: dict[str, str], returned: dict[str, str]) -> str | None:
    """Who complained: the first address of the report's and the returned message's
    fields that names one, redacted ones aside."""
    for found in (plain_address(report.get("original-rcpt-to")),
                  plain_address(returned.get(JMRP_RECIPIENT)),
                  single_address(returned.get("to")),
                  plain_address(report.get("removal-recipient"))):
        if unredacted(found):
            return found
    return None
