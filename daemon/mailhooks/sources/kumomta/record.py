"""One KumoMTA log record → its events (one per recipient), or why it has none."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Final

from mailhooks.sources import fields as f
from mailhooks.sources.fields import MAX_DIAGNOSTIC, MAX_LABEL, MAX_MESSAGE_ID, MAX_NAME
from mailhooks.sources.ids import derive_event_id
from mailhooks.sources.kumomta.values import (
    campaign_and_tenant,
    dsn_status,
    integer,
    json_type,
    once,
    scalar,
    sender_domain,
    source_ip,
)
from mailhooks.sources.records import Parsed, Skipped, skipped

SOURCE: Final = "kumomta"

EVENT_OF_TYPE: Final[dict[str, str]] = {
    "Reception": "received",
    "Delivery": "delivered",
    "Bounce": "bounced",
    "TransientFailure": "delayed",
    "Expiration": "bounced",
    "AdminBounce": "bounced",
    "Rejection": "rejected",
    "OOB": "bounced",
    "Feedback": "complaint",
}
# Every other type (Delay, AdminRebind, DeferredInjectionRebind, …) moves a message between
# KumoMTA's own queues: nothing happened to the email yet. They are skipped as `type:NAME`
# (`type:other` for a name KumoMTA does not document).
QUEUE_TYPES: Final = frozenset({"Delay", "AdminRebind", "DeferredInjectionRebind"})
CLASSIFIED_EVENTS: Final = frozenset({"bounced", "delayed", "rejected"})

HARD_CLASSES: Final = frozenset({"InvalidRecipient", "BadDomain", "InactiveMailbox"})
EXPIRED_CLASSES: Final = frozenset({"MessageExpired"})
SOFT_CLASSES: Final = frozenset({
    "DNSFailure", "SpamBlock", "SpamContent", "ProhibitedAttachment", "RelayDenied", "AutoReply",
    "TransientFailure", "Subscribe", "Unsubscribe", "ChallengeResponse", "BadConfiguration",
    "BadConnection", "ContentRelated", "InvalidSender", "NoAnswerFromHost", "PolicyRelated",
    "ProtocolErrors", "QuotaIssues", "RelayingIssues", "RoutingErrors", "SpamRelated",
    "VirusRelated", "AuthenticationFailed",
})

# Record fields passed on as metadata under their own names, in this order; then
# `bounce_classification`, a Feedback's `feedback_report.*` and the logged `meta.*` and
# `headers.*`. The package's docstring says why these and no others.
METADATA_FIELDS: Final = ("type", "id", "queue", "num_attempts", "egress_pool", "egress_source")
FEEDBACK_METADATA: Final = ("user_agent", "source_ip")

TYPE_NAME: Final = re.compile(r"[A-Za-z]{1,40}")
MESSAGE_ID_HEADER: Final = re.compile(r"(?im)^message-id[ \t]*:[ \t]*(.*(?:\r?\n[ \t].*)*)")
# What a Feedback record gives as its recipient when its report names no complainer.
NO_COMPLAINER: Final = object()


def parse_record(record: dict[str, Any], parsed: Parsed) -> None:
    """The record's events into `parsed`, or why it has none."""
    kind = record.get("type")
    if not isinstance(kind, str) or (event := EVENT_OF_TYPE.get(kind)) is None:
        parsed.skipped.append(_unknown_type(kind))
        return
    message_id = _message_id(record, kind)
    if message_id is None:
        parsed.skipped.append(skipped("malformed", f"{kind} record without a usable `id`"))
        return
    feedback = kind == "Feedback"
    report = record.get("feedback_report") if feedback else None
    if not isinstance(report, dict):
        report = {}
    response = record.get("response")
    if not isinstance(response, dict):
        response = {}
    code = response.get("code")
    enhanced = response.get("enhanced_code")
    content = response.get("content")
    status = dsn_status(enhanced)
    timestamp = record.get("timestamp")

    sender = report.get("original_mail_from") if feedback else record.get("sender")
    fields: dict[str, Any] = {
        "event": event, "message_id": message_id,
        "timestamp": f.unix_text(timestamp),  # None when it is no time: the receive time then
        "sending_domain": once(sender_domain, sender),  # a Feedback's sender is the reporter
        "sending_node": f.identifier(record.get("nodeid"), MAX_NAME),
        "dedicated_ip": source_ip(record.get("source_address")),
    }
    if not feedback:  # a Feedback record's response is KumoMTA's own answer to the reporter
        fields["smtp_code"] = code if type(code) is int and 200 <= code <= 599 else None
        fields["dsn_status"] = status
        fields["diagnostic"] = f.text(content, MAX_DIAGNOSTIC)
        if kind != "OOB":  # an OOB's queue is the incoming report's, not the campaign's
            fields["campaign_id"], fields["bridge"] = campaign_and_tenant(record)
    classification = None
    if event in CLASSIFIED_EVENTS:
        classification = f.text(record.get("bounce_classification"), f.MAX_METADATA_TEXT)
    if event == "bounced":
        fields["bounce_type"] = _bounce_type(kind, classification, code, enhanced)
    if feedback:
        fields["complaint_type"] = f.identifier(report.get("feedback_type"), MAX_LABEL)
    fields["metadata"] = _metadata(record, classification, report) or None
    common = {name: value for name, value in fields.items() if value is not None}

    # The event id: what tells two records apart, never what the hook chose to log.
    recipient = record.get("recipient")
    identity = (
        scalar(recipient), scalar(timestamp), scalar(record.get("num_attempts")), scalar(code),
        status, scalar(content), scalar(record.get("session_id")),
    )
    record_id = scalar(record.get("id"))
    for given, email in _recipients(recipient, report if feedback else None):
        if email is None:
            detail = f"{kind} record without a usable recipient: {_shown(given)}"
            parsed.skipped.append(skipped("no-recipient", detail))
            continue
        each = common.copy()
        each["email"] = email
        each["event_id"] = derive_event_id(SOURCE, kind, record_id, email, *identity)
        parsed.events.append(each)


def _unknown_type(kind: object) -> Skipped:
    if not isinstance(kind, str) or not TYPE_NAME.fullmatch(kind):
        return skipped("malformed", "the record has no usable `type`")
    # The kind is a metric label: only KumoMTA's own names make one, not any word a client sends.
    known = kind if kind in QUEUE_TYPES else "other"
    return skipped(f"type:{known}", f"a {kind} record is no email event")


def _recipients(recipient: object, report: dict[str, Any] | None) -> list[tuple[object, str | None]]:
    """(what the record gave, the address or None) for each recipient the record is
    about; `report` is a Feedback record's."""
    if type(recipient) is str and report is None:  # the usual record: one recipient
        return [(recipient, f.address(recipient))]
    if report is not None:
        # A Feedback record's recipient is the feedback mailbox; the complainer is in the report.
        trace = report.get("supplemental_trace")
        original = report.get("original_rcpto_to")
        candidates = [trace.get("recipient") if isinstance(trace, dict) else None,
                      *(original[:1] if isinstance(original, list) else [])]
        for candidate in candidates:
            address = f.address(candidate)
            if address is not None:
                return [(candidate, address)]
        # Some providers (Hotmail) anonymise the report: it names no complainer, and the
        # record's own recipient is the feedback mailbox, so there is no one to report.
        return [(NO_COMPLAINER, None)]
    # batch_handling="BatchByDomain" logs one record for several recipients, as an array.
    each = recipient if isinstance(recipient, list) and recipient else [recipient]
    return [(value, f.address(value)) for value in each]


def _message_id(record: dict[str, Any], kind: str) -> str | None:
    """The email's Message-ID: for Feedback the reported message's, else the header the hook
    logged (if it was configured to), else KumoMTA's spool id, which every record has. An OOB
    record's headers are the incoming DSN's, whose Message-ID would pass for the original's;
    its spool id at least says which KumoMTA message it was."""
    if kind == "Feedback":
        report = record.get("feedback_report")
        original = report.get("original_message") if isinstance(report, dict) else None
        if isinstance(original, str):
            header_block = original.split("\n\n", 1)[0][:65536]
            match = MESSAGE_ID_HEADER.search(header_block)
            found = f.identifier(match.group(1) if match else None, MAX_MESSAGE_ID)
            if found:
                return found
    headers = record.get("headers") if kind != "OOB" else None
    if isinstance(headers, dict):
        for name, value in headers.items():
            if isinstance(name, str) and name.strip().lower() == "message-id":
                found = f.identifier(value[0] if isinstance(value, list) and value else value, MAX_MESSAGE_ID)
                if found:
                    return found
    return f.identifier(record.get("id"), MAX_MESSAGE_ID)



def _bounce_type(kind: str, classification: str | None, code: object, enhanced: object) -> str:
    """The table in the package's docstring."""
    if kind == "Expiration":
        return "expired"
    if kind == "AdminBounce":
        return "admin"
    if classification in HARD_CLASSES:
        return "hard"
    if classification in EXPIRED_CLASSES:
        return "expired"
    if classification in SOFT_CLASSES:
        return "soft"
    status_class = integer(enhanced.get("class")) if isinstance(enhanced, dict) else None
    status = f"{status_class}.0.0" if status_class in (2, 4, 5) else None
    smtp_code = integer(code)
    return f.bounce_type(status, smtp_code if smtp_code is not None and 200 <= smtp_code <= 599 else None)


def _metadata(record: dict[str, Any], classification: str | None, report: dict[str, Any]) -> dict[str, Any]:
    """What a receiver uses beyond the event's own fields (the package's docstring), under
    the record's names, bounded like Event.metadata: at most 50 scalars, text one line
    of at most 1,000 characters."""
    found: dict[str, Any] = {}
    for name in METADATA_FIELDS:
        if (value := f.metadata_value(record.get(name))) is not None:
            found[name] = value
    if classification is not None:
        found["bounce_classification"] = classification
    for name in FEEDBACK_METADATA:  # `report` is a Feedback record's, else empty
        if (value := f.metadata_value(report.get(name))) is not None:
            found[f"feedback_report.{name}"] = value
    # The meta values and headers the operator chose to log, as far as they are scalars.
    for prefix in ("meta", "headers"):
        values = record.get(prefix)
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if len(found) == f.MAX_METADATA_ITEMS:
                return found
            label = _metadata_name(prefix, key) if type(key) is str else None
            if label is not None and label not in found and (value := f.metadata_value(value)) is not None:
                found[label] = value
    return found


@lru_cache(maxsize=4096)  # the hook logs the same few names in every record
def _metadata_name(prefix: str, key: str) -> str | None:
    """`prefix.key` when it may name a metadata value; None for a blank or odd key, and for
    the Message-ID header, which is the event's message_id already."""
    if not key or (prefix == "headers" and key.strip().lower() == "message-id"):
        return None
    name = f"{prefix}.{key}"
    return name if f.metadata_key(name) else None



def _shown(value: object) -> str:
    """A value for a person, short: the recipient as the record gave it."""
    if value is NO_COMPLAINER:
        return "the report names no complainer"
    if isinstance(value, str):
        return repr(f.one_line(value, 80))
    return f"a JSON {json_type(value)}"
