"""The Test button: a sample event sent to one webhook's channel now, outside the spool,
and what came of it. The daemon's `POST /webhooks/{id}/test` and `mailhooks test --webhooks
DIR` (a working copy, before it is deployed) share it."""

from __future__ import annotations

import uuid
from typing import Any

from mailhooks import log
from mailhooks.channels.base import Message
from mailhooks.events import EVENT_NAMES, sample
from mailhooks.live import LiveWebhook

_log = log.get("mailhooks.app")


def event_for(live: LiveWebhook, event_name: str | None) -> str:
    """The event a test sends: the one asked for, else the webhook's first."""
    selected = live.loaded.webhook.events
    return event_name or ("delivered" if selected == "all" else selected[0])


async def send_sample(live: LiveWebhook, event_name: str | None) -> dict[str, Any]:
    """Send a sample of `event_name` (marked `"test": true`) through the webhook's channel;
    the report the API answers with."""
    name = event_for(live, event_name)
    if name not in EVENT_NAMES:
        return {"webhook": live.id, "error": f"unknown event {name!r}", "sent": False}
    event = sample(name)
    message = Message(f"test_{uuid.uuid4().hex}", [event.payload()], event.payload_json())
    outcome = await live.sender.send(message)
    _log.info("webhook_test", webhook=live.id, event_name=name, status=outcome.status,
              outcome=outcome.outcome, duration_ms=round(outcome.duration_ms, 1),
              error=outcome.error)
    return {
        "webhook": live.id, "event": name, "sent": True, "ok": outcome.ok,
        "status": outcome.status, "duration_ms": round(outcome.duration_ms, 1),
        "body": outcome.body_excerpt, "error": outcome.error,
    }
