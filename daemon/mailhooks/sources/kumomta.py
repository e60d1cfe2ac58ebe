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
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Final, NoReturn

from mailhooks.sources import fields as f
from mailhooks.sources.fields import MAX_DETAIL, MAX_DIAGNOSTIC, MAX_LABEL, MAX_MESSAGE_ID, MAX_NAME
from mailhooks.sources.ids import derive_event_id
from mailhooks.sources.records import Parsed, skip

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
# KumoMTA's own queues: nothing happened to the email yet. They are skipped as `type:NAME`.

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
            parsed.extend(parse_records(_decode(line)))
        except ValueError as error:
            parsed.extend(skip("malformed", f"line {number}: {error}"))
    return parsed


def parse_records(data: Any) -> Parsed:
    """Events from one decoded JSON value: a log record, or a list of them."""
    parsed = Parsed()
    records = data if isinstance(data, list) else [data]
    for index, record in enumerate(records):
        if isinstance(record, dict):
            parsed.extend(_parse_record(record))
        else:
            where = f"record {index}" if isinstance(data, list) else "the body"
            parsed.extend(skip("malformed", f"{where} is a JSON {_json_type(record)}, not an object"))
    return parsed


def _parse_record(record: dict[str, Any]) -> Parsed:
    kind = record.get("type")
    if not isinstance(kind, str) or not TYPE_NAME.fullmatch(kind):
        return skip("malformed", "the record has no usable `type`")
    event = EVENT_OF_TYPE.get(kind)
    if event is None:
        return skip(f"type:{kind}", f"a {kind} record is no email event")
    message_id = _message_id(record, kind)
    if message_id is None:
        return skip("malformed", f"{kind} record without a usable `id`")
    parsed = Parsed()
    common = {"message_id": message_id, **_common_fields(record, kind, event)}
    for raw, email in _recipients(record, kind):
        if email is None:
            parsed.extend(skip("no-recipient", f"{kind} record without a usable recipient: {raw}"))
            continue
        fields = {"event": event, "email": email, **common, "event_id": _event_id(record, kind, email)}
        parsed.events.append(f.compact(fields))
    return parsed


def _recipients(record: dict[str, Any], kind: str) -> Iterator[tuple[str, str | None]]:
    """(what the record said, the address or None) for each recipient the record is about."""
    if kind == "Feedback":
        # The record's recipient is the feedback mailbox; the complainer is in the report.
        report = _object(record.get("feedback_report"))
        trace = _object(report.get("supplemental_trace"))
        original = report.get("original_rcpto_to")
        candidates = [trace.get("recipient"), *(original[:1] if isinstance(original, list) else [])]
        for candidate in candidates:
            address = f.address(candidate)
            if address is not None:
                yield _shown(candidate), address
                return
        # Some providers (Hotmail) anonymise the report: it names no complainer, and the
        # record's own recipient is the feedback mailbox, so there is no one to report.
        yield "the report names no complainer", None
        return
    recipient = record.get("recipient")
    # batch_handling="BatchByDomain" logs one record for several recipients, as an array.
    for each in recipient if isinstance(recipient, list) and recipient else [recipient]:
        yield _shown(each), f.address(each)


def _common_fields(record: dict[str, Any], kind: str, event: str) -> dict[str, Any]:
    """The fields every event of this record shares (all but email and event_id)."""
    # A Feedback record's response is KumoMTA's own answer to the report's sender.
    response = _object(record.get("response")) if kind != "Feedback" else {}
    classification = None
    if event in ("bounced", "delayed", "rejected"):
        classification = f.text(record.get("bounce_classification"), f.MAX_METADATA_TEXT)
    fields: dict[str, Any] = {
        # None when it is no time: mailhooks then uses the receive time.
        "timestamp": f.unix_text(record.get("timestamp")),
        "sending_domain": _sending_domain(record, kind),
        "sending_node": f.identifier(record.get("nodeid"), MAX_NAME),
        "dedicated_ip": _source_ip(record.get("source_address")),
        "smtp_code": _smtp_code(response.get("code")),
        "dsn_status": _dsn_status(response.get("enhanced_code")),
        "diagnostic": f.text(response.get("content"), MAX_DIAGNOSTIC),
        "metadata": _metadata(record, kind, classification),
    }
    # An OOB or Feedback record's queue is that of the incoming report, not the campaign's.
    if kind not in ("OOB", "Feedback"):
        fields["campaign_id"], fields["bridge"] = _campaign_and_tenant(record)
    if event == "bounced":
        fields["bounce_type"] = _bounce_type(kind, classification, response)
    if kind == "Feedback":
        report = _object(record.get("feedback_report"))
        fields["complaint_type"] = f.identifier(report.get("feedback_type"), MAX_LABEL)
    return fields


def _event_id(record: dict[str, Any], kind: str, email: str) -> str:
    """The same record always gives the same id; what tells two records apart is in it."""
    response = _object(record.get("response"))
    return derive_event_id(
        SOURCE, kind, _scalar(record.get("id")), email, _scalar(record.get("recipient")),
        _scalar(record.get("timestamp")), _scalar(record.get("num_attempts")),
        _scalar(response.get("code")), _dsn_status(response.get("enhanced_code")),
        _scalar(response.get("content")), _scalar(record.get("session_id")),
    )


def _message_id(record: dict[str, Any], kind: str) -> str | None:
    """The email's Message-ID: for Feedback the reported message's, else the header the hook
    logged (if it was configured to), else KumoMTA's spool id, which every record has. An OOB
    record's headers are the incoming DSN's, whose Message-ID would pass for the original's;
    its spool id at least says which KumoMTA message it was."""
    candidates: list[object] = []
    if kind == "Feedback":
        original = _object(record.get("feedback_report")).get("original_message")
        if isinstance(original, str):
            header_block = original.split("\n\n", 1)[0][:65536]
            match = MESSAGE_ID_HEADER.search(header_block)
            candidates.append(match.group(1) if match else None)
    headers = _object(record.get("headers")) if kind != "OOB" else {}
    for name, value in headers.items():
        if isinstance(name, str) and name.strip().lower() == "message-id":
            candidates.append(value[0] if isinstance(value, list) and value else value)
    candidates.append(record.get("id"))
    for candidate in candidates:
        found = f.identifier(candidate, MAX_MESSAGE_ID)
        if found:
            return found
    return None


def _sending_domain(record: dict[str, Any], kind: str) -> str | None:
    sender = record.get("sender")
    if kind == "Feedback":  # the record's sender is the reporter; the report names ours
        sender = _object(record.get("feedback_report")).get("original_mail_from")
    return f.domain_of(f.address(sender))


def _campaign_and_tenant(record: dict[str, Any]) -> tuple[str | None, str | None]:
    """From the queue name `campaign:tenant@domain!routing_domain` (each part but the domain
    optional), as KumoMTA's QueueNameComponents::parse splits it; else from the `campaign`
    and `tenant` meta values, when the hook logs them."""
    campaign = tenant = None
    queue = record.get("queue")
    if isinstance(queue, str) and "@" in queue:
        prefix = queue.split("@", 1)[0]
        if ":" in prefix:
            campaign, tenant = prefix.split(":", 1)
        else:
            tenant = prefix
    meta = _object(record.get("meta"))
    campaign = f.identifier(campaign, MAX_NAME) or f.identifier(meta.get("campaign"), MAX_NAME)
    tenant = f.identifier(tenant, MAX_NAME) or f.identifier(meta.get("tenant"), MAX_NAME)
    return campaign, tenant


def _bounce_type(kind: str, classification: str | None, response: dict[str, Any]) -> str:
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
    status_class = _integer(_object(response.get("enhanced_code")).get("class"))
    status = f"{status_class}.0.0" if status_class in (2, 4, 5) else None
    return f.bounce_type(status, _smtp_code(response.get("code")))


def _metadata(record: dict[str, Any], kind: str, classification: str | None) -> dict[str, Any] | None:
    """What a receiver uses beyond the event's own fields (the module docstring), under the
    record's names, bounded like Event.metadata."""
    items: list[tuple[str, object]] = [(name, record.get(name)) for name in METADATA_FIELDS]
    items.append(("bounce_classification", classification))
    if kind == "Feedback":
        report = _object(record.get("feedback_report"))
        items += [(f"feedback_report.{name}", report.get(name)) for name in FEEDBACK_METADATA]
    # The meta values and headers the operator chose to log, as far as they are scalars
    # (Message-ID is the event's message_id already).
    for prefix in ("meta", "headers"):
        items.extend(
            (f"{prefix}.{key}", value) for key, value in _object(record.get(prefix)).items()
            if key and not (prefix == "headers" and key.strip().lower() == "message-id")
        )
    return f.metadata(items)


def _source_ip(value: object) -> str | None:
    """`source_address.address`, a socket address (`10.0.0.1:53210`, `[2001:db8::1]:25`), as
    a bare IP address; None for anything else (a unix socket path, a name)."""
    address = f.text(_object(value).get("address"), 100) or ""
    if address.startswith("[") or address.count(":") == 1:  # not a bare IPv6 address
        address = address.rsplit(":", 1)[0]
    return f.ip_address(address)


def _smtp_code(value: object) -> int | None:
    code = _integer(value)
    return code if code is not None and 200 <= code <= 599 else None


def _dsn_status(value: object) -> str | None:
    """`response.enhanced_code` ({class, subject, detail}) as `class.subject.detail`."""
    enhanced = _object(value)
    parts = [_integer(enhanced.get(name)) for name in ("class", "subject", "detail")]
    if parts[0] not in (2, 4, 5) or any(part is None or not 0 <= part <= 999 for part in parts[1:]):
        return None
    return ".".join(str(part) for part in parts)


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _scalar(value: object) -> str | int | float | None:
    """A value fit to go into an event id: a string or a number, else None (str() of a deeply
    nested value could exceed the recursion limit)."""
    return value if isinstance(value, str | int | float) and not isinstance(value, bool) else None


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _shown(value: object) -> str:
    """A value for a person, short: the recipient as the record gave it."""
    if isinstance(value, str):
        return repr(f.one_line(value, 80))
    return f"a JSON {_json_type(value)}"


def _json_type(value: object) -> str:
    return JSON_TYPES.get(type(value), "value")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")
