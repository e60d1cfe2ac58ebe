"""What the Postfix joiner remembers between lines, and that memory as a JSON document:
`ingest postfix` keeps it beside its cursor in the state directory, so a restart neither
forgets a message's Message-ID and sender nor the recipients it still has deferred."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from mailhooks.sources.fields import iso

STATE_VERSION: Final = 1
# What the joiner keeps of one deferral of a recipient.
PENDING_FIELDS: Final = ("dsn", "text", "relay", "orig_to")

Key = tuple[str, str]  # (host, queue id)


@dataclass
class Known:
    """What the joiner knows of one queue id."""

    seen: datetime
    message_id: str | None = None
    sender: str | None = None  # "" is the null sender
    # recipient → the last deferral: dsn, text, relay, orig_to
    pending: dict[str, dict[str, str | None]] = field(default_factory=dict)


def dump(newest: datetime | None, messages: Mapping[Key, Known]) -> dict[str, Any]:
    """The memory as a JSON-ready document, for `load`."""
    return {
        "version": STATE_VERSION,
        "newest": iso(newest) if newest else None,
        "messages": [
            {"host": host, "queue_id": queue_id, "seen": iso(known.seen),
             "message_id": known.message_id, "sender": known.sender,
             "pending": {recipient: dict(info) for recipient, info in known.pending.items()}}
            for (host, queue_id), known in messages.items()
        ],
    }


def load(state: Mapping[str, Any], max_pending: int) -> tuple[datetime | None, dict[Key, Known]]:
    """What `dump` wrote: the log time reached, and the messages in the order they were
    last named. `ValueError` names what is wrong with a document that is no state."""
    if not isinstance(state, Mapping) or state.get("version") != STATE_VERSION:
        raise ValueError(f"not a postfix joiner state of version {STATE_VERSION}")
    newest = state.get("newest")
    reached = _time(newest, "state: newest") if newest is not None else None
    items = state.get("messages")
    if not isinstance(items, list):
        raise ValueError("state: messages is not a list")
    messages: dict[Key, Known] = {}
    for number, item in enumerate(items):
        where = f"state: messages[{number}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where} is not an object")
        host, queue_id = item.get("host"), item.get("queue_id")
        if not isinstance(host, str) or not isinstance(queue_id, str):
            raise ValueError(f"{where}: host and queue_id must be strings")
        known = Known(seen=_time(item.get("seen"), f"{where}.seen"),
                      message_id=_text(item.get("message_id"), f"{where}.message_id"),
                      sender=_text(item.get("sender"), f"{where}.sender"))
        pending = item.get("pending")
        if not isinstance(pending, Mapping):
            raise ValueError(f"{where}.pending is not an object")
        for recipient, info in list(pending.items())[:max_pending]:
            if not isinstance(recipient, str) or not isinstance(info, Mapping):
                raise ValueError(f"{where}.pending: not recipient → object")
            known.pending[recipient] = {
                name: _text(info.get(name), f"{where}.pending.{name}") for name in PENDING_FIELDS
            }
        messages[(host, queue_id)] = known
    return reached, messages


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{where} is not a time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{where} is not a time") from None
    if moment.tzinfo is None:
        raise ValueError(f"{where} has no offset")
    return moment.astimezone(UTC)


def _text(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where} is not a string")
    return value
