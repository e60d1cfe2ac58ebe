"""The `telegram` channel: a bot's sendMessage, https://core.telegram.org/bots/api#sendmessage.

The bot token is a secret (it is in the request's path: `/bot<token>/sendMessage`); the
chat id is not. The text is HTML (the default) or MarkdownV2, event values escaped for
it. Telegram takes "1-4096 characters after entities parsing", counted in UTF-16 units:
a longer text is cut by what it shows, never inside a tag, an entity or an escape, and
every tag or entity the cut leaves open is closed, so the cut text still parses.

"In a single chat, avoid sending more than one message per second", and "in a group,
bots are not able to send more than 20 messages per minute"
(https://core.telegram.org/bots/faq#my-bot-is-hitting-limits). A bot cannot tell a group
from a private chat by its id alone, so every chat keeps to both. A 429 says how long to
wait in `parameters.retry_after`; 400 (a bad chat, a message it cannot parse), 401 and
404 (a bad token) and 403 (the bot was blocked or removed) are permanent.
"""

from __future__ import annotations

import html
import re
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field

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
)
from mailhooks.channels.config import SecretRef, TemplateField
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.http import Answer
from mailhooks.secrets import Resolved
from mailhooks.templates import Mode

MAX_TEXT: Final = 4096
RATE: Final = Rate(per_second=1, burst=1, per_minute=20)
CONNECTIONS: Final = 16
CHAT_ID_PATTERN: Final = r"^(-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$"
_TOKEN: Final = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}$")
ParseMode = Literal["HTML", "MarkdownV2"]
MODES: Final[dict[str, Mode]] = {"HTML": "telegram_html", "MarkdownV2": "telegram_markdown"}


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# --- HTML: tags show nothing, an entity one character -----------------------------------

_TAG: Final = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)[^<>]*>")


def html_length(text: str) -> int:
    return utf16(html.unescape(_TAG.sub("", text)))


def html_finish(prefix: str, marker: str) -> str:
    """A cut HTML text: the marker, then an end tag for every tag left open."""
    open_tags: list[str] = []
    for tag in _TAG.finditer(prefix):
        name = tag[2].lower()
        if not tag[1]:
            open_tags.append(name)
        elif name in open_tags:
            del open_tags[len(open_tags) - 1 - open_tags[::-1].index(name):]
    return prefix + marker + "".join(f"</{name}>" for name in reversed(open_tags))


# --- MarkdownV2: markers show nothing, an escape one character --------------------------

_MARKDOWN_TOKEN: Final = atoms(r"\\.", "```", r"\|\|", "__", r"\]\(")
_TOGGLES: Final = frozenset({"*", "_", "__", "~", "||"})


def markdown_scan(text: str) -> tuple[int, list[tuple[str, int]]]:
    """What a MarkdownV2 text shows (UTF-16 units), and the entities it leaves open (each
    with where it starts): `*`, `_`, `__`, `~`, `||`, `` ` ``, ```` ``` ```` and `[` of a link."""
    shown = 0
    opened: list[tuple[str, int]] = []
    code = ""  # inside `…` or ```…```: only escapes and the closing marker are special
    in_url = False
    for match in _MARKDOWN_TOKEN.finditer(text):
        part = match[0]
        if in_url:  # a link's (url): shows nothing
            if part == ")":
                in_url = False
                opened.pop()
        elif code:
            if part == code:
                code = ""
                opened.pop()
            else:
                shown += utf16(part[1:] if part.startswith("\\") else part)
        elif part.startswith("\\") and len(part) == 2:
            shown += utf16(part[1])
        elif part in ("`", "```"):
            code = part
            opened.append((part, match.start()))
        elif part in _TOGGLES:
            if opened and opened[-1][0] == part:
                opened.pop()
            else:
                opened.append((part, match.start()))
        elif part == "[":
            opened.append(("[", match.start()))
        elif part == "](" and opened and opened[-1][0] == "[":
            in_url = True
        elif part not in ("]", ">"):
            shown += utf16(part)
    return shown, opened


def markdown_length(text: str) -> int:
    return markdown_scan(text)[0]


def markdown_finish(prefix: str, marker: str) -> str:
    """A cut MarkdownV2 text: a link cut open is dropped from its `[`; then the marker,
    then each entity left open is closed."""
    _, opened = markdown_scan(prefix)
    links = [start for part, start in opened if part == "["]
    while links:
        prefix = prefix[: links[0]]
        _, opened = markdown_scan(prefix)
        links = [start for part, start in opened if part == "["]
    return prefix + marker + "".join(part for part, _ in reversed(opened))


MARKUPS: Final[dict[str, Markup]] = {
    "HTML": Markup(mode="telegram_html", atoms=atoms(r"<[^<>]*>", r"&#?\w{1,10};"),
                   bold="<b>{}</b>", measure=html_length, finish=html_finish),
    "MarkdownV2": Markup(mode="telegram_markdown", atoms=_MARKDOWN_TOKEN, bold="*{}*",
                         measure=markdown_length, finish=markdown_finish),
}


class TelegramChannel(ChatChannel):
    """Send each event (or a batch's digest) to a Telegram chat with a bot."""

    type: Literal["telegram"] = Field(description="A Telegram chat, through a bot.")
    bot_token: SecretRef = Field(description="Reference to the bot's token (123456:ABC…).")
    chat_id: int | Annotated[str, Field(pattern=CHAT_ID_PATTERN)] = Field(
        description="The chat: its id (negative for groups) or @channelusername."
    )
    text: str | None = Field(
        default=None, min_length=1, max_length=MAX_TEMPLATE_CHARS,
        description="Template of the message, in parse_mode's markup; event values are escaped. "
        "A default when absent.",
    )
    parse_mode: ParseMode = Field(default="HTML", description="HTML or MarkdownV2.")
    message_thread_id: int | None = Field(
        default=None, ge=1, description="A topic of a forum supergroup."
    )
    disable_notification: bool = Field(default=False, description="Deliver silently.")

    reference_field: ClassVar[str] = "bot_token"
    service_section: ClassVar[str] = "telegram"
    service_label: ClassVar[str] = "Telegram chat"
    stand_in_shape: ClassVar[str] = "0:unresolved-placeholder-token"

    def endpoint(self) -> str:
        return f"Telegram chat {self.chat_id}"

    def templates(self) -> list[TemplateField]:
        if self.text is None:
            return []
        return [TemplateField(("channel", "text"), self.text, MODES[self.parse_mode], max_chars=MAX_TEXT,
                              measure=MARKUPS[self.parse_mode].measure)]


class TelegramSender(ChatSender):
    """Sends one webhook's messages to its Telegram chat."""

    service = "Telegram"

    def __init__(self, webhook: WebhookRef, channel: TelegramChannel, secrets: Resolved,
                 context: ChannelContext) -> None:
        token = secrets.text(channel.bot_token).strip()
        if not _TOKEN.match(token):
            raise UrlRefused(channel.bot_token, "is not a Telegram bot token (digits, ':', then "
                                                "letters, digits, '_' or '-')")
        base = context.settings.telegram.api_url.rstrip("/")
        url = parsed(channel.bot_token, f"{base}/bot{token}/sendMessage")
        markup = MARKUPS[channel.parse_mode]
        super().__init__(KIND, webhook, context, url, channel.timeout, secrets, markup=markup,
                         text=ChatTemplate(channel.text, default_text(markup), markup.mode, webhook,
                                           ("text",)),
                         limit=MAX_TEXT)
        self.rate_key = f"telegram:{hashed(token)}:{channel.chat_id}"
        self._channel = channel

    def payload(self, message: Message) -> dict[str, Any]:
        channel = self._channel
        body: dict[str, Any] = {
            "chat_id": channel.chat_id,
            "text": self.message_text(message),
            "parse_mode": channel.parse_mode,
            # A preview would fetch a click-tracking link and count a click nobody made.
            "link_preview_options": {"is_disabled": True},
        }
        if channel.message_thread_id is not None:
            body["message_thread_id"] = channel.message_thread_id
        if channel.disable_notification:
            body["disable_notification"] = True
        return body

    def reply(self, answer: Answer) -> Reply:
        data = json_object(answer.body)
        description = data.get("description") if isinstance(data.get("description"), str) else None
        if 200 <= answer.status < 300:
            return Reply(ok=data.get("ok") is not False, reason=description)
        parameters = data.get("parameters")
        parameters = parameters if isinstance(parameters, dict) else {}
        if answer.status == 429:
            return Reply(ok=False, reason=description, wait=seconds(parameters.get("retry_after")))
        migrated = parameters.get("migrate_to_chat_id")
        if isinstance(migrated, int) and not isinstance(migrated, bool):
            return Reply(ok=False, reason=f"the group is now a supergroup: set chat_id to {migrated}")
        if answer.status in (401, 404):
            return Reply(ok=False, reason=f"the bot token is not valid ({description or 'no description'})")
        return Reply(ok=False, reason=description)


KIND: Final = ChannelKind(type="telegram", config=TelegramChannel, sender=TelegramSender, concurrency=1,
                          connections=CONNECTIONS, rate=RATE)
