"""The `slack` channel: a message to a Slack incoming webhook,
https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks.

The webhook URL is itself the credential ("Your webhook URL contains a secret"), so the
file names it by reference and it must start with `{slack.api_url}/services/`. Slack
answers `200 ok`; errors are a plain string (`channel_not_found`, `invalid_token`, …)
with a 4xx, which is permanent; a 429 carries `Retry-After` (seconds). Links are never
unfurled: a preview would fetch a click-tracking link and count a click nobody made.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Final, Literal

from pydantic import Field

from mailhooks.channels.base import ChannelKind, Message, Rate, WebhookRef
from mailhooks.channels.chat import (
    MAX_TEMPLATE_CHARS,
    ChatChannel,
    ChatSender,
    ChatTemplate,
    Markup,
    Reply,
    atoms,
    default_text,
    hashed,
    under,
)
from mailhooks.channels.config import SecretRef, TemplateField
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.http import Answer
from mailhooks.secrets import Resolved
from mailhooks.templates import Mode, PayloadTemplate, TemplateError, compile_payload, event_variables

# "For best results, limit the number of characters in the text field to 4,000
# characters" (https://api.slack.com/methods/chat.postMessage#truncating).
MAX_TEXT: Final = 4000
# A text object's text: "maximum length is 3000 characters"
# (https://docs.slack.dev/reference/block-kit/composition-objects/text-object).
MAX_BLOCK_TEXT: Final = 3000
MAX_BLOCKS: Final = 50  # https://docs.slack.dev/reference/block-kit/blocks
# "Incoming webhooks: 1 per second, short bursts >1 allowed"
# (https://docs.slack.dev/apis/web-api/rate-limits).
RATE: Final = Rate(per_second=1, burst=1)
SERVICES_PATH: Final = "/services/"
CONNECTIONS: Final = 16
_ERROR_CODE: Final = re.compile(r"^[a-z][a-z0-9_]{0,79}$")

MARKUP: Final = Markup(mode="slack", atoms=atoms(r"&#?\w{1,10};", r"<[^<>\n]{1,500}>"), bold="*{}*")
DEFAULT_TEXT: Final = default_text(MARKUP)


class SlackChannel(ChatChannel):
    """Post each event (or a batch's digest) to a Slack channel through an incoming webhook."""

    type: Literal["slack"] = Field(description="A Slack incoming webhook.")
    url: SecretRef = Field(
        description="Reference to the webhook URL (https://hooks.slack.com/services/…): a secret."
    )
    text: str | None = Field(
        default=None, min_length=1, max_length=MAX_TEMPLATE_CHARS,
        description="Template of the message, in Slack's mrkdwn; event values are escaped. "
        "A default when absent.",
    )
    blocks: list[dict[str, Any]] | None = Field(
        default=None, min_length=1, max_length=MAX_BLOCKS,
        description="Block Kit blocks; every string in them is a template. `text` is then the "
        "notification's text. Not sent with a digest.",
    )

    service_section: ClassVar[str] = "slack"
    service_label: ClassVar[str] = "Slack webhook"
    stand_in_shape: ClassVar[str] = "{api_url}" + SERVICES_PATH + "T0/B0/unresolved"
    mode: ClassVar[Mode] = "slack"

    def templates(self) -> list[TemplateField]:
        fields = self.text_fields((("text",), self.text, MAX_TEXT))
        if self.blocks is not None:
            # A payload is a mapping: the blocks are compiled as {"blocks": […]} at `channel`.
            fields.append(TemplateField(("channel",), {"blocks": self.blocks}, "slack", payload=True))
        return fields


class SlackSender(ChatSender):
    """Sends one webhook's messages to its Slack incoming webhook."""

    service = "Slack"

    def __init__(self, webhook: WebhookRef, channel: SlackChannel, secrets: Resolved,
                 context: ChannelContext) -> None:
        prefix = context.settings.slack.api_url.rstrip("/") + SERVICES_PATH
        url = under(secrets, channel.url, prefix, "a Slack incoming webhook URL")
        super().__init__(KIND, webhook, context, url, channel.timeout, secrets, markup=MARKUP,
                         text=ChatTemplate(channel.text, DEFAULT_TEXT, "slack", webhook, ("text",)),
                         limit=MAX_TEXT)
        self.rate_key = f"slack:{hashed(str(url))}"
        self._blocks: PayloadTemplate | None = None
        if channel.blocks is not None:
            try:
                self._blocks = compile_payload(
                    {"blocks": channel.blocks}, mode="slack",
                    positions=lambda path: webhook.where(("channel", *path)))
            except TemplateError as error:  # checked at load; only a bug gets here
                raise ValueError(f"blocks: {error}") from None

    def payload(self, message: Message) -> dict[str, Any]:
        body: dict[str, Any] = {"text": self.message_text(message),
                                "unfurl_links": False, "unfurl_media": False}
        if self._blocks is not None and len(message.events) == 1:
            variables = event_variables(message.events[0], webhook_id=self.webhook.id,
                                        webhook_name=self.webhook.name)
            body["blocks"] = self._fit_blocks(self._blocks.render(variables)["blocks"])
        return body

    def _fit_blocks(self, value: Any) -> Any:
        """Every `text` string of the blocks within a text object's limit."""
        if isinstance(value, list):
            return [self._fit_blocks(item) for item in value]
        if isinstance(value, dict):
            return {key: self.fit(item, MAX_BLOCK_TEXT, "blocks")
                    if key == "text" and isinstance(item, str) else self._fit_blocks(item)
                    for key, item in value.items()}
        return value

    def reply(self, answer: Answer) -> Reply:
        text = answer.body.decode("utf-8", errors="replace").strip()
        if 200 <= answer.status < 300:
            return Reply(ok=True) if text == "ok" else Reply(
                ok=False, reason=f"answered {answer.status} without ok")
        # Slack's errors are a code (`channel_not_found`); anything else is not shown.
        return Reply(ok=False, reason=text if _ERROR_CODE.match(text) else None)


KIND: Final = ChannelKind(type="slack", config=SlackChannel, sender=SlackSender, concurrency=1,
                          connections=CONNECTIONS, rate=RATE)
