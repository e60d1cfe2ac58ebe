"""The message one request carries: its deliveries' events, and an id stable across
retries (Standard Webhooks' `webhook-id`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, overload

from pydantic_core import from_json

from mailhooks.channels.base import Message
from mailhooks.spool import Delivery


def message_for(deliveries: Sequence[Delivery], batched: bool) -> Message:
    """One request's message; its id is stable across retries of the same deliveries."""
    payloads = [delivery.payload for delivery in deliveries]
    if not batched:
        return Message(deliveries[0].event_id, LazyEvents(payloads), payloads[0])
    return Message(batch_id(deliveries), LazyEvents(payloads), b"[" + b",".join(payloads) + b"]",
                   batched=True)


def batch_id(deliveries: Sequence[Delivery]) -> str:
    """A batch's webhook-id: the one it was first sent under (kept in the spool once it
    failed), else made from its members."""
    stored = deliveries[0].batch
    if stored is not None:
        return stored
    digest = hashlib.sha256(",".join(str(d.id) for d in deliveries).encode()).hexdigest()[:24]
    return f"batch_{digest}"


class LazyEvents(Sequence[dict[str, Any]]):
    """The events of a message, parsed from their JSON only if a channel reads them (a
    web channel sends the bytes as they are)."""

    def __init__(self, payloads: list[bytes]) -> None:
        self._payloads = payloads
        self._parsed: list[dict[str, Any]] | None = None

    def _events(self) -> list[dict[str, Any]]:
        if self._parsed is None:
            self._parsed = [_parsed(payload) for payload in self._payloads]
        return self._parsed

    def __len__(self) -> int:
        return len(self._payloads)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | Sequence[dict[str, Any]]:
        return self._events()[index]


def _parsed(payload: bytes) -> dict[str, Any]:
    """An event's spooled JSON: by pydantic's parser (a third of the time of `json`'s, per
    delivery of a webhook with templates), or by `json`'s for what it refuses and `json`
    reads (a lone surrogate escaped in a string)."""
    try:
        event: dict[str, Any] = from_json(payload)
    except ValueError:
        event = json.loads(payload)
    return event
