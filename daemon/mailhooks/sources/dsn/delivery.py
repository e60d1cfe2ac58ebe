"""Delivery status notifications (RFC 3464) → `bounced` and `delayed` events, one per
recipient block (the actions and the search for the report part are in the doc of
`mailhooks.sources.dsn`).

Fields of a DSN's event
-----------------------
* `email`: `Final-Recipient` (`rfc822; a@b`, angle brackets or not; `utf-8;` too), else
  `Original-Recipient`; the other one goes to `metadata.original_recipient` when it
  differs. A block naming no address (`unknown; nair_s`) is a `Skipped`.
* `dsn_status`: `Status`, except that an unspecific `X.0.0` gives way to the enhanced
  code of the same class in `Diagnostic-Code` (many MTAs report `5.0.0` over a remote
  `550 5.1.1`). `smtp_code` and `diagnostic` come from `Diagnostic-Code` (`smtp; 550 5.1.1
  …`, unfolded; the code at its start or after `said:`/`says:`).
* `bounce_type`: `hard` for a 5.X.X status, `expired` for a failure with a 4.X.X status
  (the reporting MTA gave up on a temporary failure: its queue lifetime ran out, as in
  RFC 3464's first example and in Postfix's own expiry notices), `hard` when unknown.
* `message_id`: the returned message's `Message-ID` (from its `message/rfc822` or
  `text/rfc822-headers` part), without angle brackets; else, for a Postfix report,
  `QUEUEID@REPORTING-MTA`; else `dsn-HASH@mailhooks.invalid`, a hash of the report's own
  Message-ID, reporting MTA, envelope id and dates: stable for the report, the same for
  all its recipients, and plainly no Message-ID anyone sent (`.invalid` is reserved).
* `sending_domain`: the domain of the envelope sender when the report carries it (the
  returned message's `Return-Path`, Postfix's `X-Postfix-Sender`), else of its `From`:
  the envelope sender is what the Postfix log source uses too.
* `timestamp`: the block's `Last-Attempt-Date` (when the delivery failed), else the
  report's `Date` (when it was written), else `Arrival-Date`.
* `sending_node` and `dedicated_ip` are not set: `Reporting-MTA` names whoever wrote the
  report, which is the sending node only when it bounced the message itself, and a
  remote MTA's report otherwise; it goes to `metadata.reporting_mta`, beside
  `remote_mta`, `original_envelope_id` and `postfix_queue_id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from typing import Any, Final

from mailhooks.sources import fields as f
from mailhooks.sources.dsn.mime import (
    DSN_TYPES,
    SOURCE,
    content_type,
    date,
    field_blocks,
    iso,
    message_id,
    metadata,
    returned_headers,
    single_address,
    synthetic_id,
    typed_address,
    typed_value,
)
from mailhooks.sources.fields import MAX_DIAGNOSTIC, MAX_MESSAGE_ID
from mailhooks.sources.ids import derive_event_id
from mailhooks.sources.records import Parsed, Skipped, checked, skip, skipped

ACTIONS: Final = {"failed": "bounced", "delayed": "delayed"}
NO_EVENT_ACTIONS: Final = frozenset({"delivered", "relayed", "expanded"})
ACTION_BY_CLASS: Final = {"5": "failed", "4": "delayed", "2": "delivered"}


@dataclass(frozen=True)
class _Report:
    """What a DSN says of itself, the same for each of its recipients."""

    reporting_mta: str | None
    queue_id: str | None
    envelope_id: str | None
    report_id: str | None  # the report's own Message-ID
    report_date: datetime | None
    arrival: datetime | None


def bounces(top: dict[str, str], parts: list[Message]) -> Parsed:
    """The events of a DSN: `top` its headers, `parts` those of its multipart/report."""
    status_part = next(child for child in parts if content_type(child) in DSN_TYPES)
    blocks = field_blocks(status_part)
    if not blocks:
        return skip("no-status-part", "the delivery-status part has no fields")
    # The per-message block comes first; a report that left it out starts with a recipient.
    if any(name in blocks[0] for name in ("final-recipient", "original-recipient", "action")):
        per_message: dict[str, str] = {}
        recipients = blocks
    else:
        per_message, recipients = blocks[0], blocks[1:]
    if not recipients:
        return skip("no-recipients", "the delivery-status part names no recipient")
    returned = returned_headers(parts)
    reporting = typed_value(per_message.get("reporting-mta"))
    report = _Report(
        reporting_mta=reporting[1] if reporting else None,
        queue_id=per_message.get("x-postfix-queue-id"),
        envelope_id=per_message.get("original-envelope-id"),
        report_id=message_id(top.get("message-id")),
        report_date=date(top.get("date")),
        arrival=date(per_message.get("arrival-date")),
    )
    original_id = message_id(returned.get("message-id"))
    if original_id is None and report.queue_id and report.reporting_mta:
        original_id = f.folded(f"{report.queue_id}@{report.reporting_mta}", MAX_MESSAGE_ID)
    if original_id is None:
        original_id = synthetic_id("dsn", report.report_id, report.reporting_mta, report.envelope_id,
                                   top.get("date"), per_message.get("arrival-date"))
    envelope_sender = (single_address(returned.get("return-path"))
                       or typed_address(per_message.get("x-postfix-sender")))
    sending_domain = f.domain_of(envelope_sender or single_address(returned.get("from")))
    result = Parsed()
    for block in recipients:
        result.add(_bounce(block, report, original_id, sending_domain))
    return result


def _bounce(block: dict[str, str], report: _Report, original_id: str,
            sending_domain: str | None) -> dict[str, Any] | Skipped:
    final = typed_address(block.get("final-recipient"))
    original = typed_address(block.get("original-recipient"))
    recipient = final or original
    if recipient is None:
        named = block.get("final-recipient") or block.get("original-recipient") or "nothing"
        return skipped("recipient:not-an-address", f"a recipient block names {named}")
    status = f.leading_status(block.get("status"))
    text, code, enhanced = _diagnostic(block.get("diagnostic-code"))
    if status is None or (status.endswith(".0.0") and enhanced and enhanced[0] == status[0]):
        status = enhanced or status
    action = (block.get("action") or "").split(" ", 1)[0].lower()
    if not action and status:
        action = ACTION_BY_CLASS.get(status[0], "")
    if action in NO_EVENT_ACTIONS:
        return skipped(f"action:{action}", f"{recipient}: {action}, no event")
    name = ACTIONS.get(action)
    if name is None:
        return skipped("action:unknown", f"{recipient}: Action {action or 'missing'}")
    bounce_type = None
    if name == "bounced":
        bounce_type = "expired" if status and status.startswith("4") else "hard"
    last_attempt = date(block.get("last-attempt-date"))
    remote = typed_value(block.get("remote-mta"))
    return checked({
        "event": name,
        "timestamp": iso(last_attempt or report.report_date or report.arrival),
        "email": recipient,
        "message_id": original_id,
        "event_id": derive_event_id(
            SOURCE, report.report_id, report.reporting_mta, report.envelope_id, report.queue_id, recipient,
            action, status, original_id, iso(last_attempt), iso(report.report_date), iso(report.arrival)),
        "sending_domain": sending_domain,
        "bounce_type": bounce_type,
        "dsn_status": status,
        "smtp_code": code,
        "diagnostic": text,
        "metadata": metadata(
            reporting_mta=report.reporting_mta, remote_mta=remote[1] if remote else None,
            original_recipient=original if original and original != recipient else None,
            original_envelope_id=report.envelope_id, postfix_queue_id=report.queue_id),
    })


def _diagnostic(value: str | None) -> tuple[str | None, int | None, str | None]:
    """`Diagnostic-Code: smtp; 550 5.1.1 …` → (text, SMTP code, enhanced code in it)."""
    if not value:
        return None, None, None
    typed = typed_value(value)
    text = f.folded(typed[1] if typed else value, MAX_DIAGNOSTIC)
    return text or None, f.reply_code(text), f.status_in(text)
