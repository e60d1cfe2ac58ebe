"""The `discord` channel: Execute Webhook,
https://discord.com/developers/docs/resources/webhook#execute-webhook.

The webhook URL holds the webhook's token, so the file names it by reference and it must
start with `{discord.api_url}/api/webhooks/`. Every message goes with
`allowed_mentions: {"parse": []}` (unless the file allows some): Discord's own guarantee
that nothing pings, beside the escaping of every event value (`@everyone` from a field
never forms). `?wait=true` makes Discord say when it refuses a message.

Rate limits (https://discord.com/developers/docs/topics/rate-limits): each answer's
`X-RateLimit-Remaining` and `X-RateLimit-Reset-After`; a window used up holds the webhook
until it resets, and a 429 holds it for the body's `retry_after` (seconds, with
decimals); a global one (`"global": true`, `X-RateLimit-Scope: global`) holds every
Discord webhook of this host, since requests to webhooks carry no token and Discord
counts them by address. Webhooks are also paced at 5 requests per 2 seconds, the bucket Discord
reports for them. A 404 means the webhook was deleted: permanent, as every other 4xx.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Final, Literal

from multidict import CIMultiDictProxy
from pydantic import Field, field_validator

from mailhooks.channels.base import ChannelKind, Message, Rate, WebhookRef
from mailhooks.channels.chat import (
    MAX_TEMPLATE_CHARS,
    ChatChannel,
    ChatSender,
    ChatTemplate,
    Markup,
    Reply,
    UrlRefused,
    atoms,
    default_text,
    hashed,
    json_object,
    parsed,
    seconds,
    under,
)
from mailhooks.channels.config import SecretRef, StrictModel, TemplateField
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.http import Answer
from mailhooks.secrets import Resolved
from mailhooks.templates import Mode

# https://discord.com/developers/docs/resources/webhook#execute-webhook-jsonform-params
# and https://discord.com/developers/docs/resources/message#embed-object-embed-limits
MAX_CONTENT: Final = 2000
MAX_EMBED_TITLE: Final = 256
MAX_EMBED_DESCRIPTION: Final = 4096
MAX_USERNAME: Final = 80
# 5 requests per 2 seconds per webhook.
RATE: Final = Rate(per_second=2.5, burst=5)
CONNECTIONS: Final = 16
# "do not include any embeds when serializing this message": no link previews (a preview
# would fetch a click-tracking link). Not set when the webhook sends its own embed.
SUPPRESS_EMBEDS: Final = 1 << 2
MAX_ANSWER_BYTES: Final = 16384
_WEBHOOK_PATH: Final = re.compile(r"^(v\d{1,3}/)?webhooks/\d{1,25}/[A-Za-z0-9_-]{1,200}/?(\?[^#]*)?$")

MARKUP: Final = Markup(mode="discord", atoms=atoms(r"\\.", "<\u200b", "@\u200b", r"<[^<>\n]{1,200}>"),
                       bold="**{}**")
DEFAULT_TEXT: Final = default_text(MARKUP)
Mention = Literal["everyone", "users", "roles"]


class DiscordEmbed(StrictModel):
    """One embed under the message."""

    title: str | None = Field(
        default=None, min_length=1, max_length=MAX_TEMPLATE_CHARS, description="Template of its title."
    )
    description: str = Field(
        min_length=1, max_length=MAX_TEMPLATE_CHARS, description="Template of its text (Markdown)."
    )
    color: int | None = Field(default=None, ge=0, le=0xFFFFFF, description="Its colour, 0xRRGGBB.")


class DiscordChannel(ChatChannel):
    """Post each event (or a batch's digest) to a Discord channel through a webhook."""

    type: Literal["discord"] = Field(description="A Discord webhook.")
    url: SecretRef = Field(
        description="Reference to the webhook URL (https://discord.com/api/webhooks/ID/TOKEN): a secret."
    )
    content: str | None = Field(
        default=None, min_length=1, max_length=MAX_TEMPLATE_CHARS,
        description="Template of the message (Markdown); event values are escaped. A default "
        "when absent, unless there is an embed.",
    )
    embed: DiscordEmbed | None = Field(default=None, description="An embed (not sent with a digest).")
    username: str | None = Field(
        default=None, min_length=1, max_length=MAX_USERNAME, description="Name shown as the sender."
    )
    allowed_mentions: list[Mention] = Field(
        default_factory=list, max_length=3,
        description="Mentions written in the template that may ping (allowed_mentions.parse); "
        "none by default. Event values never ping.",
    )

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        if value is not None and ("discord" in value.lower() or "clyde" in value.lower()):
            raise ValueError("Discord refuses a webhook name containing 'discord' or 'clyde'")
        return value

    service_section: ClassVar[str] = "discord"
    service_label: ClassVar[str] = "Discord webhook"
    stand_in_shape: ClassVar[str] = "{api_url}/api/webhooks/0/unresolved"
    mode: ClassVar[Mode] = "discord"

    def templates(self) -> list[TemplateField]:
        embed = self.embed
        return self.text_fields(
            (("content",), self.content, MAX_CONTENT),
            (("embed", "title"), embed.title if embed else None, MAX_EMBED_TITLE),
            (("embed", "description"), embed.description if embed else None, MAX_EMBED_DESCRIPTION),
        )


def window(headers: CIMultiDictProxy[str]) -> float | None:
    """Seconds until the rate window resets, when this answer used its last request."""
    if headers.get("X-RateLimit-Remaining", "").strip() != "0":
        return None
    try:
        return seconds(float(headers.get("X-RateLimit-Reset-After", "")))
    except ValueError:
        return None


class DiscordSender(ChatSender):
    """Sends one webhook's messages to its Discord webhook."""

    service = "Discord"
    answer_limit = MAX_ANSWER_BYTES

    def __init__(self, webhook: WebhookRef, channel: DiscordChannel, secrets: Resolved,
                 context: ChannelContext) -> None:
        prefix = context.settings.discord.api_url.rstrip("/") + "/api/"
        url = str(under(secrets, channel.url, prefix, "a Discord webhook URL"))
        if not _WEBHOOK_PATH.match(url[len(prefix):]):
            raise UrlRefused(channel.url, f"is not a Discord webhook URL: it must look like "
                                          f"{prefix}webhooks/ID/TOKEN")
        waiting = parsed(channel.url, url + ("&" if "?" in url else "?") + "wait=true")
        super().__init__(KIND, webhook, context, waiting, channel.timeout, secrets, markup=MARKUP,
                         text=ChatTemplate(channel.content, DEFAULT_TEXT, "discord", webhook, ("content",)),
                         limit=MAX_CONTENT)
        self.rate_key = f"discord:{hashed(url)}"
        self._channel = channel
        embed = channel.embed
        self._embed_title = (ChatTemplate(embed.title, "{{ event }}", "discord", webhook, ("embed", "title"))
                             if embed is not None and embed.title is not None else None)
        self._embed_description = (ChatTemplate(embed.description, DEFAULT_TEXT, "discord", webhook,
                                                        ("embed", "description"))
                                   if embed is not None else None)

    def payload(self, message: Message) -> dict[str, Any]:
        body: dict[str, Any] = {"allowed_mentions": {"parse": list(self._channel.allowed_mentions)}}
        if self._channel.username:
            body["username"] = self._channel.username
        if self._embed_description is None or len(message.events) > 1:
            body["content"] = self.message_text(message)
            body["flags"] = SUPPRESS_EMBEDS
            return body
        event = message.events[0]
        if self._channel.content is not None:
            body["content"] = self.message_text(message)
        embed: dict[str, Any] = {"description": self.fit(
            self._embed_description.render(event), MAX_EMBED_DESCRIPTION, "embed.description")}
        if self._embed_title is not None:
            embed["title"] = self.fit(self._embed_title.render(event), MAX_EMBED_TITLE, "embed.title")
        if self._channel.embed is not None and self._channel.embed.color is not None:
            embed["color"] = self._channel.embed.color
        body["embeds"] = [embed]
        return body

    def reply(self, answer: Answer) -> Reply:
        if 200 <= answer.status < 300:
            return Reply(ok=True, wait=window(answer.headers))
        data = json_object(answer.body)
        if answer.status == 429:
            # Webhook requests carry no token: a global limit is this host's, for every webhook.
            service_wide = data.get("global") is True \
                or answer.headers.get("X-RateLimit-Global", "").lower() == "true" \
                or answer.headers.get("X-RateLimit-Scope", "").lower() == "global"
            return Reply(ok=False, wait=seconds(data.get("retry_after")), service_wide=service_wide)
        message, code = data.get("message"), data.get("code")
        if not isinstance(message, str):
            return Reply(ok=False)
        return Reply(ok=False, reason=f"{message} (code {code})" if isinstance(code, int) else message)


KIND: Final = ChannelKind(type="discord", config=DiscordChannel, sender=DiscordSender, concurrency=1,
                          connections=CONNECTIONS, rate=RATE)
