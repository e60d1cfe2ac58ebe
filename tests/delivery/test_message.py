"""The events of a message, read from their spooled JSON only when a channel asks."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from mailhooks.delivery.message import message_for


def _delivery(number: int, payload: bytes) -> Any:
    return SimpleNamespace(id=number, event_id=f"e{number}", payload=payload, batch=None)


def test_events_read_as_json_reads_them_whatever_the_parser() -> None:
    # pydantic's parser reads the usual event; a lone surrogate, escaped, is read as
    # Python's json reads it (pydantic's refuses it).
    payloads = [json.dumps({"event": "bounced", "campaign_id": 12345678901234567890123,
                            "metadata": {"ratio": 0.1, "deep": [1, "é"]}}).encode(),
                b'{"event": "delivered", "diagnostic": "\\ud800 x"}']
    message = message_for([_delivery(n, p) for n, p in enumerate(payloads)], batched=True)
    assert list(message.events) == [json.loads(payload) for payload in payloads]
    assert message.body == b"[" + b",".join(payloads) + b"]"


def test_the_events_are_not_read_when_nobody_asks() -> None:
    message = message_for([_delivery(1, b"not json at all")], batched=False)
    assert message.body == b"not json at all" and len(message.events) == 1
