"""The `pushover` channel: one notification per event, https://pushover.net/api.

As the API asks: a 4xx is permanent (a bad token or user key; repeating it never helps),
except 429, which means the application's monthly quota is spent; then every delivery
with that application token holds until `X-Limit-App-Reset`. 5xx and network errors are
retried, never sooner than 5 seconds, with at most 2 connections to the API at once.
The token and the user key never appear in a log line or an error (don't log the
request either: its form holds both).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal

from multidict import CIMultiDictProxy
from pydantic import Field
from yarl import URL

from mailhooks import log
from mailhooks.channels.base import ChannelKind, Message, Outcome, WebhookRef
from mailhooks.channels.config import ChannelConfig, SecretRef, TemplateField, origin
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.http import Answer, HttpSender, Request, parse_retry_after, status_text
from mailhooks.events import CLICK_EVENTS
from mailhooks.secrets import Resolved
from mailhooks.settings import Settings
from mailhooks.templates import Template, TemplateError, compile_template, event_variables
from mailhooks.text import one_line

_log = log.get(__name__)

# Limits of https://pushover.net/api#limits (characters, not bytes).
MAX_TITLE_LENGTH: Final = 250  # https://pushover.net/api#messages
MAX_MESSAGE_LENGTH: Final = 1024  # https://pushover.net/api#messages
MAX_URL_LENGTH: Final = 512  # https://pushover.net/api#urls
MAX_URL_TITLE_LENGTH: Final = 100  # https://pushover.net/api#urls
MAX_TEMPLATE_CHARS: Final = 10_000

MESSAGES_PATH: Final = "/1/messages.json"
# "never sooner than 5 seconds" (SPEC §5; https://pushover.net/api#friendly).
MIN_RETRY_AFTER: Final = 5.0
# "no more than 2 concurrent HTTP requests" (SPEC §5; https://pushover.net/api#friendly).
CONNECTIONS: Final = 2
# Without X-Limit-App-Reset, try again in an hour after the quota is spent.
DEFAULT_QUOTA_HOLD: Final = 3600.0
MUTE_PRIORITY: Final = "-1"
# How much of an answer is read: Pushover's JSON answers are small.
MAX_ANSWER_BYTES: Final = 4096

# Seed sound names → Pushover API names (https://pushover.net/api#sounds).
PUSHOVER_SOUNDS: Final = {
    "mute": "none",
    "vibrate": "vibrate",
    "pushover": "pushover",
    "bike": "bike",
    "bugle": "bugle",
    "cash_register": "cashregister",
    "classical": "classical",
    "cosmic": "cosmic",
    "falling": "falling",
    "gamelan": "gamelan",
    "incoming": "incoming",
    "intermission": "intermission",
    "magic": "magic",
    "mechanical": "mechanical",
    "piano_bar": "pianobar",
    "siren": "siren",
    "space_alarm": "spacealarm",
    "tug_boat": "tugboat",
    "alien_alarm": "alien",
    "climb": "climb",
    "persistent": "persistent",
    "echo": "echo",
    "up_down": "updown",
    "none": "none",
}
SOUND_NAMES: Final = tuple(dict.fromkeys([*PUSHOVER_SOUNDS, *PUSHOVER_SOUNDS.values()]))
Sound = Literal[
    "mute", "vibrate", "pushover", "bike", "bugle", "cash_register", "classical", "cosmic",
    "falling", "gamelan", "incoming", "intermission", "magic", "mechanical", "piano_bar",
    "siren", "space_alarm", "tug_boat", "alien_alarm", "climb", "persistent", "echo",
    "up_down", "none", "cashregister", "pianobar", "spacealarm", "tugboat", "alien", "updown",
]



class PushoverChannel(ChannelConfig):
    """Push each event to a phone with Pushover."""

    type: Literal["pushover"] = Field(description="A Pushover notification.")
    user_key: SecretRef = Field(description="Reference to the Pushover user or group key.")
    api_token: SecretRef = Field(description="Reference to the Pushover application token.")
    sound: Sound | None = Field(default=None, description="Notification sound.")
    device: str | None = Field(
        default=None, max_length=25, pattern=r"^[A-Za-z0-9_-]+(,[A-Za-z0-9_-]+)*$",
        description="Only these devices (comma-separated); all of the user's when absent.",
    )
    title: str | None = Field(
        default=None, min_length=1, max_length=MAX_TEMPLATE_CHARS,
        description="Template of the title (plain text); 'Bounced (hard): recipient@example.com' "
        "when absent.",
    )
    message: str | None = Field(
        default=None, min_length=1, max_length=MAX_TEMPLATE_CHARS,
        description="Template of the message (plain text); the campaign, domain and node when absent.",
    )

    def secret_texts(self) -> list[str]:
        return [self.user_key, self.api_token]

    def templates(self) -> list[TemplateField]:
        return [
            TemplateField(("channel", name), source, "text", max_chars=limit)
            for name, source, limit in (("title", self.title, MAX_TITLE_LENGTH),
                                        ("message", self.message, MAX_MESSAGE_LENGTH))
            if source is not None
        ]

    def endpoint(self) -> str:
        return "Pushover"

    def destinations(self, settings: Settings) -> list[str]:
        return [origin(settings.pushover.api_url)]


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


class PushoverSender(HttpSender):
    """Sends one webhook's events as Pushover notifications."""

    answer_limit = MAX_ANSWER_BYTES

    def __init__(
        self, webhook: WebhookRef, channel: PushoverChannel, secrets: Resolved,
        context: ChannelContext,
    ) -> None:
        url = URL(context.settings.pushover.api_url.rstrip("/") + MESSAGES_PATH)
        super().__init__(KIND, webhook, context, url, channel.timeout, secrets)
        self._channel = channel
        self._token = secrets.text(channel.api_token)
        self._user = secrets.text(channel.user_key)
        # The quota, and so a hold, belongs to the application token.
        self.rate_key = "pushover:" + hashlib.sha256(self._token.encode()).hexdigest()[:16]
        self._title = _compiled(channel.title, webhook, "title")
        self._message = _compiled(channel.message, webhook, "message")

    def texts(self, event: Mapping[str, Any]) -> tuple[str, str]:
        """The title and the message: the templates' when set (and not blank), else the
        usual ones. Raises TemplateError when a template fails."""
        title, message = "", ""
        if self._title is not None or self._message is not None:
            variables = event_variables(event, webhook_id=self.webhook.id, webhook_name=self.webhook.name)
            title = self._title.render(variables) if self._title is not None else ""
            message = self._message.render(variables) if self._message is not None else ""
        return (title if title.strip() else title_of(event),
                message if message.strip() else message_of(event))

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
        title, text = self.texts(event)
        fields = {
            "token": self._token,
            "user": self._user,
            "title": self._limit("title", title, MAX_TITLE_LENGTH),
            "message": self._limit("message", text, MAX_MESSAGE_LENGTH),
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

    def refuse(self) -> Outcome | None:
        refused = super().refuse()
        if refused is None:
            return None
        # The API's address is the config's: retried, as a network error would be.
        return Outcome(ok=False, retry=True, error=refused.error, retry_after=MIN_RETRY_AFTER)

    def build(self, message: Message) -> Request | Outcome:
        """Notify about `message.events[0]`: Pushover has no batches, one event a message."""
        if not message.events:
            return Outcome(ok=False, retry=False, error="Pushover: the message has no event")
        try:
            return Request(form=self.form(message.events[0]))
        except TemplateError as error:
            # The same event fails the same way every time: retrying never helps.
            return Outcome(ok=False, retry=False,
                           error=one_line(self.scrub(f"Pushover: the template failed: {error}")))

    def observe(self, headers: CIMultiDictProxy[str]) -> None:
        value = headers.get("X-Limit-App-Remaining")
        if value is not None and value.strip().isdigit():
            self._context.report("pushover_remaining", int(value))

    def unanswered(self, reason: str, status: int | None, duration_ms: float) -> Outcome:
        return Outcome(ok=False, retry=True, status=status, error=f"Pushover: {reason}",
                       retry_after=MIN_RETRY_AFTER, duration_ms=duration_ms)

    def classify(self, answer: Answer, duration_ms: float) -> Outcome:
        status, headers = answer.status, answer.headers
        shown = self.excerpt(answer)
        reply = _json(answer.body)
        if status == 200 and reply.get("status") == 1:
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
            errors = reply.get("errors")
            reasons = (
                "; ".join(str(item) for item in errors)
                if isinstance(errors, list) and errors
                else status_text(status)
            )
            return Outcome(
                ok=False, retry=False, status=status,
                error=one_line(self.scrub(f"Pushover refused the request: {reasons}")),
                body_excerpt=shown, duration_ms=duration_ms,
            )
        retry_after = max(MIN_RETRY_AFTER, parse_retry_after(headers.get("Retry-After")) or 0.0)
        error = ("Pushover answered 200 without status 1" if status == 200
                 else f"Pushover: {status_text(status)}")
        return Outcome(
            ok=False, retry=True, status=status, error=error, retry_after=retry_after,
            body_excerpt=shown, duration_ms=duration_ms,
        )


def _compiled(source: str | None, webhook: WebhookRef, name: str) -> Template | None:
    if source is None:
        return None
    try:
        return compile_template(source, where=webhook.where(("channel", name)), mode="text")
    except TemplateError as error:  # checked at load; only a bug gets here
        raise ValueError(f"template: {error}") from None


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


KIND: Final = ChannelKind(type="pushover", config=PushoverChannel, sender=PushoverSender,
                          concurrency=CONNECTIONS, connections=CONNECTIONS)
