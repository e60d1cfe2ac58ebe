"""The `pushover` channel: one notification per event, https://pushover.net/api.

As the API asks: a 4xx is permanent (a bad token or user key; repeating it never helps),
except 429, which means the application's monthly quota is spent; then every Pushover
delivery holds until `X-Limit-App-Reset`. 5xx and network errors are retried, never
sooner than 5 seconds. The token and the user key never appear in a log line or an error
(don't log the request either: its form holds both).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp
from yarl import URL

from mailhooks import log
from mailhooks.channels.base import ChannelContext, HttpSender, Message, Outcome, excerpt
from mailhooks.channels.web import (
    network_error,
    one_line,
    parse_retry_after,
    read_excerpt,
    status_text,
)
from mailhooks.events import CLICK_EVENTS
from mailhooks.webhooks.models import PUSHOVER_SOUNDS, PushoverChannel
from mailhooks.webhooks.secrets import Resolved

_log = log.get(__name__)

# Limits of https://pushover.net/api#limits (characters, not bytes).
MAX_TITLE_LENGTH: Final = 250  # https://pushover.net/api#messages
MAX_MESSAGE_LENGTH: Final = 1024  # https://pushover.net/api#messages
MAX_URL_LENGTH: Final = 512  # https://pushover.net/api#urls
MAX_URL_TITLE_LENGTH: Final = 100  # https://pushover.net/api#urls

MESSAGES_PATH: Final = "/1/messages.json"
# "never sooner than 5 seconds" (SPEC §5; https://pushover.net/api#friendly).
MIN_RETRY_AFTER: Final = 5.0
# Without X-Limit-App-Reset, try again in an hour after the quota is spent.
DEFAULT_QUOTA_HOLD: Final = 3600.0
MUTE_PRIORITY: Final = "-1"
# How much of an answer is read: Pushover's JSON answers are small.
MAX_ANSWER_BYTES: Final = 4096
REDACTED: Final = "[redacted]"

TITLES: Final = {
    "received": "Received",
    "delivered": "Delivered",
    "bounced": "Bounced",
    "rejected": "Rejected",
    "delayed": "Delayed",
    "newsletter_opened": "Opened",
    "transactional_opened": "Opened",
    "newsletter_clicked": "Clicked",
    "transactional_clicked": "Clicked",
    "complaint": "Complaint",
}


def title_of(event: Mapping[str, Any]) -> str:
    """`Bounced (hard): recipient@example.com`."""
    name = str(event.get("event", "event"))
    label = TITLES.get(name, name.replace("_", " ").capitalize())
    kind = event.get("bounce_type") if name == "bounced" else None
    if name == "complaint":
        kind = event.get("complaint_type")
    if kind:
        label = f"{label} ({kind})"
    email = event.get("email")
    return f"{label}: {email}" if email else label


def message_of(event: Mapping[str, Any]) -> str:
    """Lines a person reads at a glance: campaign and domain, node and campaign id."""
    lines: list[str] = []
    if event.get("test"):
        lines.append("[test]")
    name, domain = event.get("broadcast_name"), event.get("sending_domain")
    if name and domain:
        lines.append(f"{name} via {domain}")
    elif name:
        lines.append(str(name))
    elif domain:
        lines.append(f"via {domain}")
    details = [
        f"{label} {event[key]}"
        for key, label in (
            ("sending_node", "node"),
            ("campaign_id", "campaign"),
            ("bridge", "bridge"),
            ("dedicated_ip", "ip"),
        )
        if event.get(key) not in (None, "")
    ]
    if details:
        lines.append(" · ".join(details))
    if not lines or lines == ["[test]"]:
        lines.append(f"message {event.get('message_id', '')}".strip())
    return "\n".join(lines)


def unix_seconds(text: Any) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def url_title_of(link: str) -> str:
    host = URL(link).host if "://" in link else None
    return f"Open the link on {host}" if host else "Open the link"


class PushoverSender(HttpSender[PushoverChannel]):
    """Sends one webhook's events as Pushover notifications."""

    def __init__(
        self,
        webhook_id: str,
        channel: PushoverChannel,
        secrets: Resolved,
        context: ChannelContext,
    ) -> None:
        url = URL(context.settings.pushover.api_url.rstrip("/") + MESSAGES_PATH)
        super().__init__(webhook_id, channel, context, url)
        self._token = secrets.text(channel.api_token)
        self._user = secrets.text(channel.user_key)

    def _limit(self, field: str, text: str, limit: int) -> str:
        if len(text) <= limit:
            return text
        _log.info(
            "pushover_truncated", webhook=self.webhook_id, field=field,
            length=len(text), limit=limit,
        )
        return text[: limit - 1] + "…"

    def form(self, event: Mapping[str, Any]) -> dict[str, str]:
        """The request's form fields for one event (token and user included)."""
        fields = {
            "token": self._token,
            "user": self._user,
            "title": self._limit("title", title_of(event), MAX_TITLE_LENGTH),
            "message": self._limit("message", message_of(event), MAX_MESSAGE_LENGTH),
        }
        if self._channel.sound:
            fields["sound"] = PUSHOVER_SOUNDS.get(self._channel.sound, self._channel.sound)
            if self._channel.sound == "mute":
                fields["priority"] = MUTE_PRIORITY
        timestamp = unix_seconds(event.get("timestamp"))
        if timestamp is not None:
            fields["timestamp"] = str(timestamp)
        if self._channel.device:
            fields["device"] = self._channel.device
        link = event.get("link_url")
        if link and event.get("event") in CLICK_EVENTS:
            fields["url"] = self._limit("url", str(link), MAX_URL_LENGTH)
            fields["url_title"] = self._limit(
                "url_title", url_title_of(str(link)), MAX_URL_TITLE_LENGTH
            )
        return fields

    def _scrub(self, text: str) -> str:
        for secret in (self._token, self._user):
            if secret:
                text = text.replace(secret, REDACTED)
        return text

    def _record_remaining(self, headers: Mapping[str, str]) -> None:
        record = self._context.extras.get("pushover_remaining")
        value = headers.get("X-Limit-App-Remaining")
        if not callable(record) or value is None:
            return
        try:
            remaining = int(value)
        except ValueError:
            return
        callback: Callable[[int], object] = record
        callback(remaining)

    async def send(self, message: Message) -> Outcome:
        """Notify about `message.events[0]`: Pushover has no batches, one event a message."""
        started = time.perf_counter()

        def elapsed() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        if self._denied_literal is not None:
            return Outcome(
                ok=False, retry=True, error=str(self._denied_literal),
                retry_after=MIN_RETRY_AFTER, duration_ms=elapsed(),
            )
        if not message.events:
            return Outcome(ok=False, retry=False, error="Pushover: the message has no event")
        fields = self.form(message.events[0])
        status: int | None = None
        try:
            async with self._context.pushover_session.post(
                self._url,
                data=fields,
                timeout=self._client_timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                self._record_remaining(response.headers)
                body = await read_excerpt(response.content, MAX_ANSWER_BYTES)
                headers = response.headers.copy()
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            text = network_error(error, self._timeout)
            if status is not None:
                text = f"{status_text(status)}, then {text}"
            return Outcome(
                ok=False, retry=True, status=status, error=f"Pushover: {text}",
                retry_after=MIN_RETRY_AFTER, duration_ms=elapsed(),
            )
        return self._classify(status, headers, body, elapsed())

    def _classify(
        self, status: int, headers: Mapping[str, str], body: bytes, duration_ms: float
    ) -> Outcome:
        shown = self._scrub(excerpt(body))
        answer = _json(body)
        if status == 200 and answer.get("status") == 1:
            return Outcome(ok=True, status=status, body_excerpt=shown, duration_ms=duration_ms)
        if status == 429:
            hold_until = _unix_time(headers.get("X-Limit-App-Reset"))
            if hold_until is None:
                hold_until = time.time() + DEFAULT_QUOTA_HOLD
            until = datetime.fromtimestamp(hold_until, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return Outcome(
                ok=False, retry=True, status=status, hold_until=hold_until,
                error=f"Pushover's monthly message quota is spent; holding until {until}",
                body_excerpt=shown, duration_ms=duration_ms,
            )
        if 400 <= status < 500:
            errors = answer.get("errors")
            reasons = (
                "; ".join(str(item) for item in errors)
                if isinstance(errors, list) and errors
                else status_text(status)
            )
            return Outcome(
                ok=False, retry=False, status=status,
                error=one_line(self._scrub(f"Pushover refused the request: {reasons}")),
                body_excerpt=shown, duration_ms=duration_ms,
            )
        retry_after = max(MIN_RETRY_AFTER, parse_retry_after(headers.get("Retry-After")) or 0.0)
        if status == 200:
            error = "Pushover answered 200 without status 1"
        else:
            error = f"Pushover: {status_text(status)}"
        return Outcome(
            ok=False, retry=True, status=status, error=error, retry_after=retry_after,
            body_excerpt=shown, duration_ms=duration_ms,
        )


def _json(body: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _unix_time(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        moment = float(value.strip())
    except ValueError:
        return None
    return moment if moment > 0 else None
