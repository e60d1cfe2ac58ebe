"""Joins Postfix's lines by queue id into events: the table and the fields are in the doc
of `mailhooks.sources.postfix`, the memory between lines in `state`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any, Final

from mailhooks.sources import fields as f
from mailhooks.sources.fields import MAX_DIAGNOSTIC, MAX_EMAIL, MAX_MESSAGE_ID, MAX_METADATA_TEXT
from mailhooks.sources.ids import derive_event_id
from mailhooks.sources.postfix import state as memory
from mailhooks.sources.postfix.lines import MAX_LINE_CHARS, LogLine, parse_syslog_line
from mailhooks.sources.postfix.outcomes import (
    MESSAGE_ID,
    PREFIX,
    QMGR_FROM,
    REJECT_PREFIXES,
    Outcome,
    parse_outcome,
    parse_reject,
)
from mailhooks.sources.postfix.state import Key, Known
from mailhooks.sources.records import Parsed, Skipped, checked, skip

SOURCE: Final = "postfix"
DEFAULT_MAX_MESSAGES: Final = 20_000
DEFAULT_MAX_AGE: Final = timedelta(days=7)
MAX_PENDING_RECIPIENTS: Final = 1_000

# status= word → event name; None: a known word that is no event.
STATUS_EVENTS: Final[dict[str, str | None]] = {
    "sent": "delivered",
    "deferred": "delayed",
    "softbounce": "delayed",
    "bounced": "bounced",
    "expired": "bounced",
    "force-expired": "bounced",
    "deliverable": None,  # address verification probes, not mail
    "undeliverable": None,
}
EXPIRED: Final = frozenset({"expired", "force-expired"})


class Joiner:
    """Joins Postfix's lines by queue id into events. Pure: lines in, `Parsed` out; the
    state it keeps between lines is bounded (see the package's doc) and `state()` is JSON.

    `feed` never raises: what it cannot read is ignored or a `Skipped`."""

    def __init__(self, *, max_messages: int = DEFAULT_MAX_MESSAGES, max_age: timedelta = DEFAULT_MAX_AGE,
                 skip_null_sender: bool = True) -> None:
        self.max_messages = max(1, max_messages)
        self.max_age = max_age
        self.skip_null_sender = skip_null_sender
        # (host, queue id) → what is known; in the order they were last named, oldest first.
        self._messages: dict[Key, Known] = {}
        self._newest: datetime | None = None

    def __len__(self) -> int:
        return len(self._messages)

    # -- the state, for `ingest postfix` ---------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything the joiner remembers, as a JSON-ready document for `restore`."""
        return memory.dump(self._newest, self._messages)

    @classmethod
    def restore(cls, state: Mapping[str, Any], **options: Any) -> Joiner:
        """A joiner that remembers what `state()` returned. `ValueError` names what is
        wrong with a state that is not one (the caller starts afresh and says so)."""
        joiner = cls(**options)
        joiner._newest, joiner._messages = memory.load(state, MAX_PENDING_RECIPIENTS)
        joiner._prune()
        return joiner

    # -- lines in, events out --------------------------------------------------------

    def feed(self, line: LogLine) -> Parsed:
        """The events (and skipped records) this line completes."""
        try:
            return self._feed(line)
        except Exception as error:  # a bug must not stop the reader; it is counted instead
            return skip("internal-error", f"{type(error).__name__} on a {f.one_line(line.program, 100)} line")

    def _feed(self, line: LogLine) -> Parsed:
        if "/" not in line.program:
            return Parsed()
        message = line.message[:MAX_LINE_CHARS]
        prefix = PREFIX.match(message)
        if prefix is None:
            return Parsed()
        self._advance(line.timestamp)
        queue_id, rest = prefix["queue_id"], message[prefix.end():]
        if rest.startswith(REJECT_PREFIXES):
            return self._reject(line, queue_id, rest)
        if queue_id == "NOQUEUE":
            return Parsed()
        if rest.startswith("to=<"):
            return self._outcome(line, queue_id, rest)
        if rest.startswith("message-id="):
            match = MESSAGE_ID.fullmatch(rest)
            if match is not None:
                message_id = f.one_line(match["message_id"], MAX_MESSAGE_ID)
                self._known(line, queue_id).message_id = message_id or None
            return Parsed()
        if rest.startswith("from=<"):
            match = QMGR_FROM.match(rest)
            if match is None:
                return self._unparsed(line, queue_id) if "status=" in rest else Parsed()
            known = self._known(line, queue_id)
            known.sender = f.one_line(match["sender"], MAX_EMAIL)
            if match["status"] is not None:
                return self._expired(line, queue_id, known, match["status"])
            return Parsed()
        if rest == "removed":
            self._messages.pop((line.host, queue_id), None)
            return Parsed()
        if "status=" in rest:
            return self._unparsed(line, queue_id)
        return Parsed()

    def _advance(self, moment: datetime) -> None:
        """Log time moves to this line's. Not the latest time seen: one line from a clock
        set a year ahead must not make every message after it look a year old."""
        self._newest = moment
        self._prune()

    def _prune(self) -> None:
        """Forget what no line named for `max_age`, and the least recently named beyond
        `max_messages`."""
        while len(self._messages) > self.max_messages:
            del self._messages[next(iter(self._messages))]
        if self._newest is None:
            return
        horizon = self._newest - self.max_age
        while self._messages:
            key = next(iter(self._messages))
            if self._messages[key].seen >= horizon:
                break
            del self._messages[key]

    def _known(self, line: LogLine, queue_id: str) -> Known:
        """The queue id's record, created when new, moved to the most recently named."""
        key = (line.host, queue_id)
        known = self._messages.pop(key, None)
        if known is None:
            known = Known(seen=line.timestamp)
        known.seen = max(known.seen, line.timestamp)
        self._messages[key] = known
        self._prune()
        return known

    def _unparsed(self, line: LogLine, queue_id: str) -> Parsed:
        program = f.one_line(line.program, 100)
        return skip("unparsed", f"{program}: {queue_id}: a status line not of Postfix's form")

    def _outcome(self, line: LogLine, queue_id: str, rest: str) -> Parsed:
        outcome = parse_outcome(rest)
        if outcome is None:
            return self._unparsed(line, queue_id)
        if outcome.status not in STATUS_EVENTS:
            # One kind for every unknown word: a kind is counted and logged once per kind.
            return skip("status:unknown", f"{queue_id}: status={outcome.status} is none Postfix logs")
        name = STATUS_EVENTS[outcome.status]
        if name is None:
            return Parsed()
        known = self._known(line, queue_id)
        recipient = f.one_line(outcome.recipient, MAX_EMAIL)
        if name == "delayed":
            if recipient in known.pending or len(known.pending) < MAX_PENDING_RECIPIENTS:
                known.pending[recipient] = {
                    "dsn": outcome.dsn, "text": f.one_line(outcome.text, MAX_DIAGNOSTIC),
                    "relay": outcome.relay, "orig_to": outcome.orig_to,
                }
        else:
            known.pending.pop(recipient, None)
        if self.skip_null_sender and known.sender == "":
            return skip("null-sender", f"{queue_id}: Postfix's own notice to {recipient}")
        expired = "expired" if outcome.status in EXPIRED else None
        return Parsed().add(_event(name, line, queue_id, known, recipient, outcome, expired))

    def _expired(self, line: LogLine, queue_id: str, known: Known, status: str) -> Parsed:
        pending, known.pending = known.pending, {}
        if self.skip_null_sender and known.sender == "":
            return skip("null-sender", f"{queue_id}: Postfix's own notice expired")
        if not pending:
            return skip("expired:unknown-recipients",
                        f"{queue_id}: {status}, but none of its deferrals was seen")
        result = Parsed()
        for recipient, info in pending.items():
            outcome = Outcome(recipient=recipient, status=status, text=info.get("text") or "",
                              orig_to=info.get("orig_to"), relay=info.get("relay"), dsn=info.get("dsn"))
            result.add(_event("bounced", line, queue_id, known, recipient, outcome, "expired"))
        return result

    def _reject(self, line: LogLine, queue_id: str, rest: str) -> Parsed:
        reject = parse_reject(rest)
        if reject is None:
            return self._unparsed(line, queue_id)
        if not reject.recipient:
            return skip("reject:no-recipient", f"{queue_id}: a {reject.stage[:40]} reject names no recipient")
        recipient = f.one_line(reject.recipient, MAX_EMAIL)
        sender = f.one_line(reject.sender, MAX_EMAIL) if reject.sender is not None else None
        text = f.one_line(reject.reply, MAX_DIAGNOSTIC)
        timestamp = f.iso(line.timestamp)
        if queue_id == "NOQUEUE":
            digest = derive_event_id("noqueue", line.host, line.pid, timestamp, sender, recipient)[-16:]
            message_id = f"noqueue-{digest}@{line.host or 'postfix'}"
        else:
            known = self._messages.get((line.host, queue_id))
            message_id = (known.message_id if known else None) or _synthetic_id(queue_id, line.host)
        metadata: dict[str, Any] = {"stage": f.one_line(reject.stage, 100)}
        if queue_id != "NOQUEUE":
            metadata["queue_id"] = queue_id
        if reject.client is not None:
            metadata["client"] = f.one_line(reject.client, MAX_METADATA_TEXT)
        return Parsed().add(checked({
            "event": "rejected",
            "timestamp": timestamp,
            "email": recipient,
            "message_id": message_id,
            "event_id": derive_event_id(SOURCE, line.host, queue_id, line.pid, recipient, sender,
                                        reject.action, reject.stage, text, timestamp),
            "sending_domain": f.domain_of(sender),
            "sending_node": line.host or None,
            "dsn_status": f.status_in(text),
            "smtp_code": f.reply_code(text),
            "diagnostic": text or None,
            "metadata": metadata,
        }))


def _event(name: str, line: LogLine, queue_id: str, known: Known, recipient: str, outcome: Outcome,
           bounce_type: str | None) -> dict[str, Any] | Skipped:
    """The event of one outcome of a recipient (`expired`, or None: from the status)."""
    text = f.one_line(outcome.text, MAX_DIAGNOSTIC)
    dsn_status = f.dsn_status(outcome.dsn) or f.status_in(text)
    code = f.reply_code(text)
    if name == "bounced" and bounce_type is None:
        bounce_type = f.bounce_type(dsn_status, code)
    timestamp = f.iso(line.timestamp)
    metadata: dict[str, Any] = {"queue_id": queue_id}
    if outcome.relay:
        metadata["relay"] = f.one_line(outcome.relay, MAX_METADATA_TEXT)
    if outcome.orig_to and outcome.orig_to != recipient:
        metadata["orig_to"] = f.one_line(outcome.orig_to, MAX_METADATA_TEXT)
    return checked({
        "event": name,
        "timestamp": timestamp,
        "email": recipient,
        "message_id": known.message_id or _synthetic_id(queue_id, line.host),
        "event_id": derive_event_id(SOURCE, line.host, queue_id, recipient, outcome.status, timestamp),
        "sending_domain": f.domain_of(known.sender),
        "sending_node": line.host or None,
        "bounce_type": bounce_type,
        "dsn_status": dsn_status,
        "smtp_code": code,
        "diagnostic": text or None,
        "metadata": metadata,
    })


def _synthetic_id(queue_id: str, host: str) -> str:
    return f"{queue_id}@{host}" if host else queue_id


def parse_lines(lines: Iterable[str], joiner: Joiner | None = None, *, year: int | None = None,
                now: datetime | None = None, tz: tzinfo | None = None) -> Parsed:
    """Every event of a log file's lines, through `joiner` (a new one when None)."""
    joiner = joiner if joiner is not None else Joiner()
    result = Parsed()
    for text in lines:
        line = parse_syslog_line(text, year, now=now, tz=tz)
        if line is not None:
            result.extend(joiner.feed(line))
    return result
