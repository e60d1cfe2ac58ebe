"""[in] KumoMTA log records → events (SPEC §8). Pure: no I/O, never raises on a record.

`body` decodes what the log hook POSTs, `record` maps one record to its events, `values`
reads each field.

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

from mailhooks.sources.kumomta.body import TooMany, parse_body, parse_lines, parse_records
from mailhooks.sources.kumomta.record import EVENT_OF_TYPE, SOURCE

__all__ = ["EVENT_OF_TYPE", "SOURCE", "TooMany", "parse_body", "parse_lines", "parse_records"]
