"""[in] KumoMTA log records → events (SPEC §8). Pure: no I/O, never raises on a record.

KumoMTA's log hook turns every log record into a message that the policy POSTs as JSON (one
object, or an array when batched) to `POST /sources/kumomta`. What was read, in
github.com/KumoCorp/kumomta:

- `docs/reference/log_record.md`: the record's shape and its types.
- `crates/kumo-log-types/src/lib.rs` (`JsonLogRecord`): `timestamp` is integer unix seconds
  (`chrono::serde::ts_seconds`); `source_address.address` is a socket address, port included;
  `RecordType` also has `AdminRebind`, `DeferredInjectionRebind`, and the docs add `Delay`.
- `crates/kumod/src/logging/disposition.rs` (`log_disposition`): a Feedback record is the
  Reception of an ARF report, so its `recipient` is the feedback mailbox and its `sender` the
  reporter; the complainer is in `feedback_report`. An OOB record's `sender` is the incoming
  DSN's envelope recipient (the original sender), its `recipient` the failed one, and its
  `queue`, `id` and `headers` those of the incoming DSN, not of the original message.
- `crates/kumod/src/logging/mod.rs` (`extract_fields`): `headers` holds only the headers the
  hook lists, keyed as the config spells them, a list when a header repeats.
- `crates/kumo-log-types/src/rfc5965.rs` (`ARFReport`): `feedback_type`,
  `original_mail_from`, `original_rcpto_to` (sic), `original_message`, `supplemental_trace`.
- `crates/bounce-classify/src/lib.rs` (`PreDefinedBounceClass`): the classifications; any
  other string is a user-defined class.
- `docs/reference/queues.md` and `QueueNameComponents::parse` (kumod's queue code):
  queue names are `campaign:tenant@domain!routing_domain`, every part but the domain optional.
- `docs/changelog/main.md`: with `batch_handling="BatchByDomain"`, `recipient` is an array.
- `docs/userguide/operation/webhooks.md`, `docs/reference/kumo/configure_log_hook.md`.

bounce_type of `bounced` events (the classification itself goes to metadata):

| record / classification | bounce_type |
|---|---|
| Expiration | `expired` |
| AdminBounce | `admin` |
| InvalidRecipient, BadDomain, InactiveMailbox | `hard`: the address takes no mail |
| MessageExpired | `expired` |
| any other predefined class (blocks, policy, content, quota, DNS, …) | `soft` |
| Uncategorized, a user-defined class, none | class 4 response → `soft`, else `hard` |

`soft` for blocks and policy: the address may well be good, the sender or the message was
refused, so a receiver must not suppress it; `hard` when unclassified, because KumoMTA gave
up on the address for good.

`metadata` carries what identifies and explains the message to a webhook's receiver: the
record's `type` and `id` (KumoMTA's spool id), `queue`, `num_attempts`, `egress_pool`,
`egress_source`, `bounce_classification`, a Feedback's `feedback_report.user_agent` and
`feedback_report.source_ip`, and the `meta.*` values and `headers.*` the hook was told to
log. The transport's fields (`site`, `size`, `delivery_protocol`, `reception_protocol`,
`tls_*`, `provider_name`, `session_id`, `peer_address.*`, `source_address.protocol`,
`response.command`) are left out: every byte of an event is spooled, and sent to each
webhook it matches. The event id is derived from what identifies the record (`type`, `id`,
the recipient, `timestamp`, `num_attempts`, the response, `session_id`), never metadata.

Records are mapped on the daemon's event loop, so the usual one is kept cheap: each field
is read once into the event's final shape, the `fields` helpers check a usual value first
(a printable string within its bound), and what a batch repeats (its sender, queue,
source address) is worked out once.
"""

from __future__ import annotations

import json
import re
from functools import _lru_cache_wrapper, lru_cache
from typing import Any, Final, NoReturn, TypeVar

from mailhooks.sources import fields as f
from mailhooks.sources.fields import MAX_DETAIL, MAX_DIAGNOSTIC, MAX_LABEL, MAX_MESSAGE_ID, MAX_NAME
from mailhooks.sources.ids import derive_event_id
from mailhooks.sources.records import Parsed, Skipped, skipped

SOURCE: Final = "kumomta"
T = TypeVar("T")

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
# KumoMTA's own queues: nothing happened to the email yet. They are skipped as `type:NAME`.
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
# `headers.*`. The module docstring says why these and no others.
METADATA_FIELDS: Final = ("type", "id", "queue", "num_attempts", "egress_pool", "egress_source")
FEEDBACK_METADATA: Final = ("user_agent", "source_ip")

TYPE_NAME: Final = re.compile(r"[A-Za-z]{1,40}")
JSON_TYPES: Final[dict[type, str]] = {
    type(None): "null", bool: "boolean", int: "number", float: "number", str: "string", list: "array",
    dict: "object",
}
MESSAGE_ID_HEADER: Final = re.compile(r"(?im)^message-id[ \t]*:[ \t]*(.*(?:\r?\n[ \t].*)*)")
# What a Feedback record gives as its recipient when its report names no complainer.
NO_COMPLAINER: Final = object()
CACHED_LENGTH: Final = 400  # the longest string `_once` remembers


class TooMany(ValueError):
    """More records in one body than a request may carry (`limits.max_batch_events`)."""

    def __init__(self, count: int) -> None:
        super().__init__(f"too many records: {count}")
        self.count = count


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("body is nested too deeply to be a KumoMTA log record") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an over-long integer
        raise ValueError(f"body is not JSON: {f.one_line(str(error), MAX_DETAIL)}") from None


def parse_body(body: bytes, max_records: int | None = None) -> Parsed:
    """The records of one POSTed body. Raises ValueError (one line) only when the body is not
    JSON, or is JSON but neither an object nor an array, and TooMany when it holds more than
    `max_records` (checked before any record is mapped); a bad record inside is a Skipped."""
    data = _decode(body)
    if not isinstance(data, dict | list):
        raise ValueError(f"body is a JSON {_json_type(data)}, not a log record or an array of them")
    if max_records is not None and isinstance(data, list) and len(data) > max_records:
        raise TooMany(len(data))
    return parse_records(data)


def parse_lines(body: bytes, max_records: int | None = None) -> Parsed:
    """NDJSON: one record per line (blank lines ignored), as a log shipper sends them. A
    line that is not JSON is a Skipped, never the whole body's refusal."""
    lines = [line for line in body.split(b"\n") if line.strip()]
    if max_records is not None and len(lines) > max_records:
        raise TooMany(len(lines))
    parsed = Parsed()
    for number, line in enumerate(lines, 1):
        try:
            data = _decode(line)
        except ValueError as error:
            parsed.skipped.append(skipped("malformed", f"line {number}: {error}"))
            continue
        _parse_value(data, parsed)
    return parsed


def parse_records(data: Any) -> Parsed:
    """Events from one decoded JSON value: a log record, or a list of them."""
    parsed = Parsed()
    _parse_value(data, parsed)
    return parsed


def _parse_value(data: Any, parsed: Parsed) -> None:
    if not isinstance(data, list):
        if isinstance(data, dict):
            _parse_record(data, parsed)
        else:
            detail = f"the body is a JSON {_json_type(data)}, not an object"
            parsed.skipped.append(skipped("malformed", detail))
        return
    for index, record in enumerate(data):
        if isinstance(record, dict):
            _parse_record(record, parsed)
        else:
            detail = f"record {index} is a JSON {_json_type(record)}, not an object"
            parsed.skipped.append(skipped("malformed", detail))


def _parse_record(record: dict[str, Any], parsed: Parsed) -> None:
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
    status = _dsn_status(enhanced)
    timestamp = record.get("timestamp")

    sender = report.get("original_mail_from") if feedback else record.get("sender")
    fields: dict[str, Any] = {
        "event": event, "message_id": message_id,
        "timestamp": f.unix_text(timestamp),  # None when it is no time: the receive time then
        "sending_domain": _once(_sender_domain, sender),  # a Feedback's sender is the reporter
        "sending_node": f.identifier(record.get("nodeid"), MAX_NAME),
        "dedicated_ip": _source_ip(record.get("source_address")),
    }
    if not feedback:  # a Feedback record's response is KumoMTA's own answer to the reporter
        fields["smtp_code"] = code if type(code) is int and 200 <= code <= 599 else None
        fields["dsn_status"] = status
        fields["diagnostic"] = f.text(content, MAX_DIAGNOSTIC)
        if kind != "OOB":  # an OOB's queue is the incoming report's, not the campaign's
            fields["campaign_id"], fields["bridge"] = _campaign_and_tenant(record)
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
        _scalar(recipient), _scalar(timestamp), _scalar(record.get("num_attempts")), _scalar(code),
        status, _scalar(content), _scalar(record.get("session_id")),
    )
    record_id = _scalar(record.get("id"))
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
    return skipped(f"type:{kind}", f"a {kind} record is no email event")


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


def _once(function: _lru_cache_wrapper[T], value: object) -> T:
    """`function(value)`, remembered for a string a batch repeats (its sender, queue, source
    address), worked out anew for any other value."""
    if type(value) is str and len(value) <= CACHED_LENGTH:
        return function(value)
    return function.__wrapped__(value)


@lru_cache(maxsize=1024)
def _sender_domain(sender: object) -> str | None:
    return f.domain_of(f.address(sender))


def _campaign_and_tenant(record: dict[str, Any]) -> tuple[str | None, str | None]:
    """From the queue name `campaign:tenant@domain!routing_domain` (each part but the domain
    optional), as KumoMTA's QueueNameComponents::parse splits it; else from the `campaign`
    and `tenant` meta values, when the hook logs them."""
    campaign, tenant = _once(_queue_parts, record.get("queue"))
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


def _bounce_type(kind: str, classification: str | None, code: object, enhanced: object) -> str:
    """The table in the module docstring."""
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
    status_class = _integer(enhanced.get("class")) if isinstance(enhanced, dict) else None
    status = f"{status_class}.0.0" if status_class in (2, 4, 5) else None
    smtp_code = _integer(code)
    return f.bounce_type(status, smtp_code if smtp_code is not None and 200 <= smtp_code <= 599 else None)


def _metadata(record: dict[str, Any], classification: str | None, report: dict[str, Any]) -> dict[str, Any]:
    """What a receiver uses beyond the event's own fields (the module docstring), under
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


def _source_ip(value: object) -> str | None:
    """`source_address.address`, a socket address (`10.0.0.1:53210`, `[2001:db8::1]:25`), as
    a bare IP address; None for anything else (a unix socket path, a name)."""
    return _once(_socket_ip, value.get("address") if isinstance(value, dict) else None)


@lru_cache(maxsize=1024)
def _socket_ip(value: object) -> str | None:
    address = f.text(value, 100) or ""
    if address.startswith("[") or address.count(":") == 1:  # not a bare IPv6 address
        address = address.rsplit(":", 1)[0]
    return f.ip_address(address)


def _dsn_status(value: object) -> str | None:
    """`response.enhanced_code` ({class, subject, detail}) as `class.subject.detail`."""
    if not isinstance(value, dict):
        return None
    status, subject, detail = value.get("class"), value.get("subject"), value.get("detail")
    if type(status) is not int or type(subject) is not int or type(detail) is not int:
        status, subject, detail = _integer(status), _integer(subject), _integer(detail)
        if subject is None or detail is None:
            return None
    if status not in (2, 4, 5) or not 0 <= subject <= 999 or not 0 <= detail <= 999:
        return None
    return f"{status}.{subject}.{detail}"


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _scalar(value: object) -> str | int | float | None:
    """A value fit to go into an event id: a string or a number, else None (str() of a deeply
    nested value could exceed the recursion limit)."""
    if type(value) is str or type(value) is int:
        return value
    return value if isinstance(value, str | int | float) and not isinstance(value, bool) else None


def _shown(value: object) -> str:
    """A value for a person, short: the recipient as the record gave it."""
    if value is NO_COMPLAINER:
        return "the report names no complainer"
    if isinstance(value, str):
        return repr(f.one_line(value, 80))
    return f"a JSON {_json_type(value)}"


def _json_type(value: object) -> str:
    return JSON_TYPES.get(type(value), "value")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")
