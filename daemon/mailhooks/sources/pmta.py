"""[in] PowerMTA accounting CSV → events (SPEC §8): `<acct-file |/usr/bin/mailhooks ingest pmta>`.
Pure: the caller feeds stdin line by line; a bad line is a Skipped, never an exception.

What was read: a PowerMTA User's Guide, §11.2.9 "Encoding" (quoted in search results; the
guide itself is not public), the v5.5 "Accounting records" chapter copied at
hackmd.io/@z3d3m0n/Pmta_records, and github.com/magicdude4eva/port25-bouncehandler's README:

- RFC 4180 CSV: records end with CRLF, a field holding a comma, a quote or a line break is
  quoted, a quote inside is doubled. A header line naming the columns starts the file; its
  first column is always `type`. Every column of every record type the file holds is in every
  line, empty where a type lacks it, in `record-fields` order. A pipe may get the header again
  mid-stream (the brief says so; not found in the guide), so a new header replaces the old.
- Record types (the guide): `d` delivered, `b` bounced, `t` transient, `tq` transient-queue,
  `r` received, `f` feedback loop, `rb`/`rs` remote bounce / remote status.
- Times: `2016-05-29 01:10:51+0200` (local time and offset) in the README's sample; the guide
  says "normally formatted as UNIX time_t". Both are read.
- Columns: `timeLogged`, `timeQueued`, `orig` (MAIL FROM), `rcpt`, `dsnAction`, `dsnStatus`
  (`5.1.1 (bad destination mailbox address)`), `dsnDiag` (`smtp;550 5.1.1 …`), `dsnMta`,
  `bounceCat`, `srcMta`, `dlvSourceIp`, `dlvDestinationIp`, `vmta`, `vmtaPool`, `jobId`,
  `envId`, `queue`, and `header_NAME` per header in `record-fields` (`header_Message-Id` in the
  README). `feedbackType` (an `f` record's ARF Feedback-Type) is the one name not seen written.

Mapping: d → delivered, b and rb → bounced, t → delayed, r → received, f → complaint.
Skipped, as `type:tq` and `type:rs` (SPEC §8 maps neither): a `tq` record is logged per queue,
not per recipient, when a connection attempt fails; an `rs` record is a remote status that is
no failure (a DSN saying delivered, relayed or delayed), which the `d` or `t` record already
told. Both readings are from the type names; the guide's text on them was not found.

bounce_type of `bounced` events, from `bounceCat` (kept in metadata as it was; the categories
as listed at it.i88.ca/2014/11/bounce-categories-of-powermta.html):

| bounceCat | bounce_type |
|---|---|
| bad-mailbox, bad-domain, inactive-mailbox | `hard`: the address takes no mail |
| message-expired | `expired` |
| every other category (spam-, policy-, content-, quota-, routing-related, …) | `soft` |
| `other`, none, unknown | from dsnStatus: class 4 → `soft`, else `hard` |

`soft` for blocks and policy: the address may well be good, the sender or the message was
refused; `hard` when unclassified, because PowerMTA gave up on the address for good.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from typing import Final

from mailhooks.sources import fields as f
from mailhooks.sources.fields import MAX_DIAGNOSTIC, MAX_LABEL, MAX_MESSAGE_ID, MAX_NAME
from mailhooks.sources.ids import derive_event_id
from mailhooks.sources.records import Parsed, skip

SOURCE: Final = "pmta"

EVENT_OF_TYPE: Final[dict[str, str]] = {
    "d": "delivered", "b": "bounced", "rb": "bounced", "t": "delayed", "r": "received", "f": "complaint",
}
SKIPPED_TYPES: Final[dict[str, str]] = {
    "tq": "a tq record reports a queue's connection failing, not one recipient's email",
    "rs": "an rs record is a remote status that is no failure; the d record already said it",
}
# Long names of the types (the v5.5 chapter: type is "d" or "delivery"), should a file use them.
TYPE_ALIASES: Final[dict[str, str]] = {
    "delivery": "d", "bounce": "b", "transient": "t", "transient-queue": "tq", "receipt": "r",
    "feedback-loop": "f", "remote-bounce": "rb", "remote-status": "rs",
}

HARD_CATEGORIES: Final = frozenset({"bad-mailbox", "bad-domain", "inactive-mailbox"})
EXPIRED_CATEGORIES: Final = frozenset({"message-expired"})
SOFT_CATEGORIES: Final = frozenset({
    "bad-configuration", "bad-connection", "content-related", "invalid-sender",
    "no-answer-from-host", "policy-related", "protocol-errors", "quota-issues",
    "relaying-issues", "routing-errors", "spam-related", "virus-related",
})

# A quoted field may span lines; past these, it is taken as an unterminated quote.
MAX_RECORD_LINES: Final = 1000
MAX_RECORD_CHARS: Final = 1 << 20
TYPE_NAME: Final = re.compile(r"[a-z-]{1,20}")

# Columns kept as metadata, under their own names, besides the header_ ones.
METADATA_COLUMNS: Final = (
    "type", "bounceCat", "dsnAction", "dsnMta", "vmta", "vmtaPool", "queue", "envId", "orcpt",
    "timeQueued", "srcType", "srcMta", "dlvType", "dlvDestinationIp", "dlvSize", "userAgent",
    "format",
)


class AccountingReader:
    """Stateful: remembers the header it has seen, and the lines of a record whose quoted
    field is still open."""

    def __init__(self) -> None:
        # Columns are looked up by lower-cased name: PowerMTA's are camelCase, but header_
        # columns are spelled as the configuration spells the header.
        self._columns: dict[str, int] | None = None  # lower-cased name → index
        self._spelling: dict[str, str] = {}  # lower-cased name → as the header wrote it
        self._names: list[str] = []
        self._pending: list[str] = []
        self._pending_chars = 0
        self._inside_quotes = False

    def feed_line(self, line: str) -> Parsed:
        """One physical line of the stream, with or without its line end."""
        line = line.removesuffix("\n").removesuffix("\r")
        if not self._pending:
            line = line.removeprefix("\ufeff")  # a UTF-8 BOM, at the start of a file
            if not line.strip():
                return Parsed()
        self._pending.append(line)
        self._pending_chars += len(line)
        self._inside_quotes = _ends_inside_quotes(line, self._inside_quotes)
        if not self._inside_quotes:
            return self._record(self._take())
        if len(self._pending) > MAX_RECORD_LINES or self._pending_chars > MAX_RECORD_CHARS:
            lines = len(self._take())
            return skip("malformed", f"a quoted field still open after {lines} lines")
        return Parsed()

    def finish(self) -> Parsed:
        """The end of the input: a record still waiting for its closing quote was cut."""
        if not self._pending:
            return Parsed()
        lines = len(self._take())
        return skip("truncated", f"the input ended inside a quoted field, {lines} lines in")

    def _take(self) -> list[str]:
        lines, self._pending, self._pending_chars, self._inside_quotes = self._pending, [], 0, False
        return lines

    def _record(self, lines: list[str]) -> Parsed:
        try:
            rows = list(csv.reader(io.StringIO("\n".join(lines)), strict=True))
        except csv.Error as error:
            return skip("malformed", f"not CSV: {f.one_line(str(error), 120)}")
        if len(rows) != 1 or not rows[0]:
            return skip("malformed", "not one CSV record")
        row = rows[0]
        if row[0].strip().removeprefix("#").lower() == "type":
            self._set_header(row)
            return Parsed()
        if self._columns is None:
            return skip("no-header", "a record before any header line naming the columns")
        if len(row) != len(self._names):
            return skip("malformed", f"{len(row)} fields where the header names {len(self._names)}")
        fields = {name: row[index] for name, index in self._columns.items()}
        return _parse_record(fields, self._spelling)

    def _set_header(self, row: list[str]) -> None:
        self._names = [name.strip().removeprefix("#") for name in row]
        self._columns, self._spelling = {}, {}
        for index, name in enumerate(self._names):
            self._columns.setdefault(name.lower(), index)
            self._spelling.setdefault(name.lower(), name)


def _ends_inside_quotes(line: str, inside: bool) -> bool:
    """Whether a quoted field is still open at the end of `line`, given whether one was at
    its start. As RFC 4180 and the csv module read it: a quote opens a field only at the
    field's start; inside, a doubled quote is a literal one and a single quote closes it."""
    if '"' not in line:  # most lines: no quote, nothing changes
        return inside
    at_field_start = not inside
    index, length = 0, len(line)
    while index < length:
        char = line[index]
        if inside:
            if char == '"':
                if index + 1 < length and line[index + 1] == '"':
                    index += 1
                else:
                    inside = False
        elif char == '"' and at_field_start:
            inside = True
        at_field_start = not inside and char == ","
        index += 1
    return inside


def _parse_record(fields: dict[str, str], spelling: dict[str, str]) -> Parsed:
    """One data record, its columns by lower-cased name."""
    raw_type = fields.get("type", "").strip().lower()
    record_type = TYPE_ALIASES.get(raw_type, raw_type)
    if not TYPE_NAME.fullmatch(record_type):
        return skip("malformed", "the record has no usable type")
    if record_type in SKIPPED_TYPES:
        return skip(f"type:{record_type}", SKIPPED_TYPES[record_type])
    event = EVENT_OF_TYPE.get(record_type)
    if event is None:
        return skip(f"type:{record_type}", f"unknown record type {record_type!r}")
    email = f.address(fields.get("rcpt"))
    if email is None:
        shown = repr(f.one_line(fields.get("rcpt", ""), 80))
        return skip("no-recipient", f"{record_type} record without a usable rcpt: {shown}")
    return Parsed(events=[_event(fields, spelling, record_type, event, email)])


def _event(
    fields: dict[str, str], spelling: dict[str, str], record_type: str, event: str, email: str
) -> dict[str, object]:
    status = f.leading_status(fields.get("dsnstatus"))
    diagnostic = f.text(fields.get("dsndiag"), MAX_DIAGNOSTIC)
    code = f.reply_code(diagnostic)
    bounce_type = _bounce_type(fields.get("bouncecat"), status, code) if event == "bounced" else None
    complaint_type = f.identifier(fields.get("feedbacktype"), MAX_LABEL) if event == "complaint" else None
    bridge = f.identifier(fields.get("vmta"), MAX_NAME) or f.identifier(fields.get("vmtapool"), MAX_NAME)
    return f.compact({
        "event": event,
        "timestamp": _timestamp(fields.get("timelogged")),
        "email": email,
        "message_id": _message_id(fields, email),
        "event_id": derive_event_id(
            SOURCE, record_type, fields.get("timelogged", ""), fields.get("rcpt", ""),
            fields.get("orig", ""), fields.get("jobid", ""), fields.get("envid", ""),
            fields.get("timequeued", ""), fields.get("dsnstatus", ""), fields.get("dsndiag", ""),
            fields.get("header_message-id", ""),
        ),
        "campaign_id": f.identifier(fields.get("jobid"), MAX_NAME),
        "sending_domain": f.domain_of(f.address(fields.get("orig"))),
        "bridge": bridge,
        "dedicated_ip": f.ip_address(fields.get("dlvsourceip")),
        "bounce_type": bounce_type,
        "complaint_type": complaint_type,
        "smtp_code": code,
        "dsn_status": status,
        "diagnostic": diagnostic,
        "metadata": _metadata(fields, spelling),
    })


def _message_id(fields: dict[str, str], email: str) -> str:
    """The `header_Message-Id` column when the acct-file logs it; else a stable stand-in that
    every record of this recipient's copy of the message shares (same sender, queue time and
    job), so a receiver can still tie its delivered, bounced and complaint events together."""
    logged = f.identifier(fields.get("header_message-id"), MAX_MESSAGE_ID)
    if logged:
        return logged
    queued = fields.get("timequeued", "")
    # Without a queue time, the time logged at least keeps two messages apart.
    when = queued or fields.get("timelogged", "")
    key = derive_event_id("pmta-message", fields.get("orig", ""), email, when,
                          fields.get("jobid", ""), fields.get("envid", ""))
    return f"<{key.split(':', 1)[1]}@pmta.mailhooks.invalid>"


def _bounce_type(category: str | None, status: str | None, code: int | None) -> str:
    """The table in the module docstring."""
    category = (category or "").strip().lower()
    if category in HARD_CATEGORIES:
        return "hard"
    if category in EXPIRED_CATEGORIES:
        return "expired"
    if category in SOFT_CATEGORIES:
        return "soft"
    return f.bounce_type(status, code)


def _metadata(fields: dict[str, str], spelling: dict[str, str]) -> dict[str, object] | None:
    """The other columns worth passing on, under their names in the header, bounded like
    Event.metadata: the ones in METADATA_COLUMNS, then the header_ ones."""
    wanted = [column.lower() for column in METADATA_COLUMNS]
    wanted += sorted(name for name in fields if name.startswith("header_") and name != "header_message-id")
    return f.metadata((spelling.get(name, ""), fields.get(name)) for name in wanted)


def _timestamp(value: str | None) -> str | None:
    """`timeLogged` as ISO 8601 UTC: `2016-05-29 01:10:51+0200`, ISO 8601 with an offset, or
    unix seconds. A time without an offset names no instant (the host's zone is unknown
    here), so it is dropped, and mailhooks uses the receive time."""
    text = (value or "").strip()
    if not text or len(text) > 40:
        return None
    if text.isdigit():
        return f.unix_text(int(text))
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            return None
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return f.iso(moment) if moment.year >= 1970 else None
