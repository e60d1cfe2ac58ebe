"""What the text of one Postfix line says after its queue id: a delivery outcome
(`to=<…>, relay=…, dsn=…, status=…`) or a refusal (`reject: …`). Only the text's form
is read here; what it means for the message is the joiner's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# Short queue ids are hexadecimal; long ones (enable_long_queue_ids) use an alphabet
# without vowels, so no word of a warning ever looks like one.
_QUEUE_ID: Final = r"(?:[0-9A-F]{5,16}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,24})"
PREFIX: Final = re.compile(rf"(?P<queue_id>NOQUEUE|{_QUEUE_ID}): ")
MESSAGE_ID: Final = re.compile(r"message-id=<?(?P<message_id>.*?)>?")
QMGR_FROM: Final = re.compile(r"from=<(?P<sender>[^>]*)>, (?:size=\d+|status=(?P<status>[a-z-]+), returned)")
REJECT_PREFIXES: Final = ("reject: ", "milter-reject: ")

_STATUS_WORD: Final = re.compile(r"[A-Za-z][A-Za-z-]{0,39}")
_REJECT: Final = re.compile(r"(?P<action>reject|milter-reject): (?P<stage>\S+)")
_CLIENT_REPLY: Final = re.compile(r" from (?P<client>[^\s\[]*\[[^\]\s]*\](?::\d+)?): (?P<reply>.*)",
                                  re.DOTALL)
_CLIENT: Final = re.compile(r" from (?P<client>[^\s\[]*\[[^\]\s]*\](?::\d+)?)")
_ENVELOPE_FROM: Final = re.compile(r"(?:^|[\s;,])from=<(?P<address>[^>]*)>")
_ENVELOPE_TO: Final = re.compile(r"(?:^|[\s;,])to=<(?P<address>[^>]*)>")
_HELO_REPLY: Final = re.compile(r"helo=<[^>]*>: (?P<reply>.*)", re.DOTALL)


@dataclass(frozen=True)
class Outcome:
    """What one `to=<…>` line says."""

    recipient: str
    status: str
    text: str
    orig_to: str | None
    relay: str | None
    dsn: str | None


@dataclass(frozen=True)
class Reject:
    """What one `reject:` line says; the texts as Postfix wrote them."""

    action: str  # reject, milter-reject
    stage: str  # RCPT, DATA, END-OF-MESSAGE, header, body, CONNECT…
    recipient: str  # "" when the line names none
    sender: str | None
    reply: str
    client: str | None


def parse_outcome(rest: str) -> Outcome | None:
    """`to=<a@b>, orig_to=<c>, relay=…, delay=…, delays=…, dsn=5.1.1, status=bounced (…)`
    after the queue id; None when it is not of that form."""
    end = rest.find(">, ", 4)
    if not rest.startswith("to=<") or end < 0:
        return None
    recipient = rest[4:end]
    after = rest[end + 3:]
    status_at = after.find("status=") if after.startswith("status=") else after.find(", status=")
    if status_at < 0:
        return None
    fields_text = after[:status_at]
    status_text = after[status_at:].removeprefix(", ").removeprefix("status=")
    word = _STATUS_WORD.match(status_text)
    if word is None:
        return None
    tail = status_text[word.end():]
    if tail.startswith(" (") and tail.endswith(")"):
        text = tail[2:-1]
    elif tail.startswith(", "):
        text = tail[2:]  # "status=expired, returned to sender"
    elif not tail:
        text = ""
    else:
        return None
    pairs: dict[str, str] = {}
    for item in fields_text.split(", "):
        name, sign, value = item.partition("=")
        if sign:
            pairs.setdefault(name, value)
    orig_to = pairs.get("orig_to")
    if orig_to is not None:
        orig_to = orig_to.removeprefix("<").removesuffix(">")
    return Outcome(recipient=recipient, status=word.group().lower(), text=text, orig_to=orig_to,
                   relay=pairs.get("relay"), dsn=pairs.get("dsn"))


def parse_reject(rest: str) -> Reject | None:
    """`reject: RCPT from host[ip]: 554 5.7.1 <…>: …; from=<…> to=<…> proto=… helo=<…>`
    (smtpd, postscreen) or `reject: header … from host[ip]; from=<…> to=<…> …: 5.7.1 …`
    (cleanup), after the queue id; None when it is not of that form."""
    match = _REJECT.match(rest)
    if match is None:
        return None
    split = max(rest.rfind("; from=<"), rest.rfind("; to=<"))
    head, envelope = (rest[:split], rest[split + 2:]) if split >= 0 else (rest, "")
    recipient = _ENVELOPE_TO.search(envelope)
    sender = _ENVELOPE_FROM.search(envelope)
    client_reply = _CLIENT_REPLY.search(head)
    helo_reply = _HELO_REPLY.search(envelope)
    reply = helo_reply["reply"] if helo_reply else (client_reply["reply"] if client_reply else "")
    client = client_reply or _CLIENT.search(head)
    return Reject(action=match["action"], stage=match["stage"],
                  recipient=recipient["address"] if recipient else "",
                  sender=sender["address"] if sender else None, reply=reply,
                  client=client["client"] if client else None)
