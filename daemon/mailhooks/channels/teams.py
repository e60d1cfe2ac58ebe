"""The `teams` channel: an Adaptive Card to a Microsoft Teams Workflows webhook ("Send
webhook alerts to a channel"),
https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook.

The body is a `message` whose one attachment is the card: a heading (the `title`
template, or a digest's count) and the text. Workflows answers 202 before it runs the
flow, so a card it cannot post is never reported back: the body is kept to 24 KiB, under
the documented 28 KB, by cutting the text. More than four requests a second are
throttled, so the channel keeps to four.

The Office 365 connector URLs (`*.webhook.office.com`, `outlook.office.com/webhook`)
are retired and refused: when the daemon resolves the URL (it is a secret, `validate`
does not see it) and, for a URL written in the file by mistake, by `validate` itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Final, Literal

from pydantic import Field
from yarl import URL

from mailhooks.channels.base import ChannelKind, CheckOptions, Message, Rate, WebhookRef
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
    encode,
    hashed,
    json_object,
    parsed,
    under,
)
from mailhooks.channels.config import SecretRef, TemplateField
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.http import Answer
from mailhooks.documents.positions import SchemaProblem
from mailhooks.secrets import Resolved, is_reference
from mailhooks.settings import Settings
from mailhooks.templates import Mode

# "The message size limit is 28 KB" (add-incoming-webhook.md); Workflows adds to what we
# send, so the JSON body is kept to 24 KiB.
MAX_BODY_BYTES: Final = 24 * 1024
MAX_TITLE_BYTES: Final = 1024
# What `validate` warns about: text that alone nearly fills the body.
MAX_TEXT_CHARS: Final = 20_000
# "If more than four requests are made in a second, the client connection is throttled"
# (add-incoming-webhook.md).
RATE: Final = Rate(per_second=4, burst=4)
CONNECTIONS: Final = 16
WORKFLOW_HOSTS: Final = (".logic.azure.com", ".powerplatform.com", ".powerautomate.com")
CONNECTOR_RETIRED: Final = (
    "is an Office 365 connector URL; Microsoft retired those connectors. In Teams, add the "
    "Workflows template 'Send webhook alerts to a channel' and use the URL it gives"
)
CARD_SCHEMA: Final = "http://adaptivecards.io/schemas/adaptive-card.json"


def json_size(text: str) -> int:
    """The bytes `text` takes in the JSON body."""
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


# Adaptive Card TextBlock markdown: a blank line separates lines.
MARKUP: Final = Markup(mode="teams", atoms=atoms(r"\\."), bold="**{}**", newline="\n\n",
                       measure=json_size)
DEFAULT_TEXT: Final = default_text(MARKUP)
DEFAULT_TITLE: Final = "{{ event }}{{ ': ' ~ email }}"


def is_connector(url: str) -> bool:
    try:
        host = (URL(url).host or "").lower().rstrip(".")
    except ValueError:
        return False
    return (host in ("outlook.office.com", "outlook.office365.com", "webhook.office.com")
            or host.endswith(".webhook.office.com"))


class TeamsChannel(ChatChannel):
    """Post each event (or a batch's digest) as an Adaptive Card through a Teams Workflows webhook."""

    type: Literal["teams"] = Field(description="A Microsoft Teams Workflows webhook.")
    url: SecretRef = Field(
        description="Reference to the Workflows webhook URL (…logic.azure.com or "
        "…powerplatform.com, with its sig=): a secret. Office 365 connector URLs are retired."
    )
    title: str | None = Field(
        default=None, min_length=1, max_length=MAX_TEMPLATE_CHARS,
        description="Template of the card's heading; none when absent.",
    )
    text: str | None = Field(
        default=None, min_length=1, max_length=MAX_TEMPLATE_CHARS,
        description="Template of the card's text (Markdown); event values are escaped. "
        "A default when absent.",
    )

    # Workflows hosts vary by tenant: no origin unless teams.api_url names one (the sender
    # refuses any host that is not a Workflows one).
    service_section: ClassVar[str] = "teams"
    service_label: ClassVar[str] = "Teams workflow"
    stand_in_shape: ClassVar[str] = "{api_url}/workflows/unresolved"
    fallback_api_url: ClassVar[str] = "https://unresolved.logic.azure.com"
    mode: ClassVar[Mode] = "teams"

    def templates(self) -> list[TemplateField]:
        return self.text_fields((("title",), self.title, MAX_TITLE_BYTES),
                                (("text",), self.text, MAX_TEXT_CHARS))


def check(channel: dict[str, Any], options: CheckOptions) -> Iterator[SchemaProblem]:
    """A connector URL written in the file: the schema refuses it as a literal secret,
    this says why it would not work either."""
    url = channel.get("url")
    if isinstance(url, str) and not is_reference(url) and is_connector(url):
        yield SchemaProblem(("channel", "url"), f"channel.url: {CONNECTOR_RETIRED}")


def workflow_url(secrets: Resolved, reference: str, settings: Settings) -> URL:
    if settings.teams.api_url:
        return under(secrets, reference, settings.teams.api_url, "a Teams webhook URL")
    text = secrets.text(reference).strip()
    if is_connector(text):
        raise UrlRefused(reference, CONNECTOR_RETIRED)
    url = parsed(reference, text)
    host = (url.host or "").lower().rstrip(".")
    if url.scheme != "https" or not host.endswith(WORKFLOW_HOSTS):
        raise UrlRefused(reference, "is not a Teams Workflows webhook URL: it must be https on a "
                                    f"host ending in {', '.join(WORKFLOW_HOSTS)}")
    return url


def card(title: str | None, text: str) -> dict[str, Any]:
    """The message with its one Adaptive Card."""
    blocks: list[dict[str, Any]] = []
    if title:
        blocks.append({"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium",
                       "style": "heading", "wrap": True})
    blocks.append({"type": "TextBlock", "text": text, "wrap": True})
    return {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": None,
        "content": {"$schema": CARD_SCHEMA, "type": "AdaptiveCard", "version": "1.4",
                    "msteams": {"width": "Full"}, "body": blocks},
    }]}


class TeamsSender(ChatSender):
    """Sends one webhook's messages to its Teams workflow."""

    service = "Teams"

    def __init__(self, webhook: WebhookRef, channel: TeamsChannel, secrets: Resolved,
                 context: ChannelContext) -> None:
        url = workflow_url(secrets, channel.url, context.settings)
        super().__init__(KIND, webhook, context, url, channel.timeout, secrets, markup=MARKUP,
                         text=ChatTemplate(channel.text, DEFAULT_TEXT, "teams", webhook, ("text",)),
                         limit=MAX_BODY_BYTES - MAX_TITLE_BYTES - 1024)
        self.rate_key = f"teams:{hashed(str(url))}"
        self._title = (ChatTemplate(channel.title, DEFAULT_TITLE, "teams", webhook, ("title",))
                       if channel.title is not None else None)

    def line(self, event: Mapping[str, Any]) -> str:
        text = self.text.render(event)
        if self._title is None:
            return text
        return f"{MARKUP.bold.format(self._title.render(event))} {text}"

    def payload(self, message: Message) -> dict[str, Any]:
        found = self.digest(message, self.limit)
        title: str | None
        if found is not None:
            title, text = found.title, found.body
        else:
            event = message.events[0]
            title = self._title.render(event) if self._title is not None else None
            text = self.text.render(event)
        if title is not None:
            title = self.fit(title, MAX_TITLE_BYTES, "title")
        # What is left for the text once the rest of the body is counted.
        budget = MAX_BODY_BYTES - len(encode(card(title, "")))
        return card(title, self.fit(text, budget, "text"))

    def reply(self, answer: Answer) -> Reply:
        if 200 <= answer.status < 300:
            return Reply(ok=True)
        error = json_object(answer.body).get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            message = error.get("message")
            return Reply(ok=False, reason=f"{error['code']}: {message}"
                         if isinstance(message, str) else error["code"])
        if answer.status == 404:
            return Reply(ok=False, reason="the workflow was deleted or turned off")
        return Reply(ok=False)


KIND: Final = ChannelKind(type="teams", config=TeamsChannel, sender=TeamsSender, concurrency=1,
                          connections=CONNECTIONS, rate=RATE, check=check)
