"""Local servers that speak the chat services' webhook APIs as their docs describe them:
the success answer, 429 with the service's own wait (a header, or a field of a JSON
body), permanent errors and 5xx, in each service's shape. Each records what it received;
a test plans the next answers (`plan`), and when none is planned the service succeeds.

Telegram's fake also checks what Telegram checks: a text of at most 4,096 characters
once its entities are parsed (UTF-16 units), and markup that parses: a cut inside a tag
or an entity is refused as Telegram refuses it (400 "can't parse entities").
"""

from __future__ import annotations

import html
import json
import re
import time
from collections import deque
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from aiohttp import web

from mailhooks.app import App
from mailhooks.channels.base import Outcome
from mailhooks.settings import Settings
from tests.utils import LOOPBACK, Received, Receiver, unix_request

SLACK_PATH: Final = "/services/T000/B000/slackSECRETxyz0123456789"
TEAMS_PATH: Final = "/workflows/5f1c0b9e/triggers/manual/paths/invoke"
TEAMS_QUERY: Final = "api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=teamsSECRETsig0123456789"
DISCORD_PATH: Final = "/api/webhooks/112233445566778899/discordSECRETtoken-0123456789"
TELEGRAM_TOKEN: Final = "123456789:telegramSECRETtoken_0123456789"


def settings_for(**sections: Any) -> Settings:
    """The daemon's settings for loopback fakes: `slack={"api_url": fake.origin}`…"""
    return Settings(allow_http=True, egress={"allow": LOOPBACK}, **sections)


class Fake:
    """One service on 127.0.0.1. `received` are the JSON bodies, in order."""

    path = "/"

    def __init__(self) -> None:
        self.receiver = Receiver(handler=self._answer)
        self.planned: deque[web.Response] = deque()

    async def __aenter__(self) -> Self:
        await self.receiver.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.receiver.stop()

    @property
    def origin(self) -> str:
        return self.receiver.origin

    @property
    def url(self) -> str:
        """The webhook's URL: a secret."""
        return self.origin + self.path

    @property
    def requests(self) -> list[Received]:
        return self.receiver.requests

    @property
    def received(self) -> list[Any]:
        return [request.json() for request in self.receiver.requests]

    def plan(self, *answers: web.Response) -> None:
        self.planned.extend(answers)

    async def _answer(self, _receiver: Receiver, request: web.Request) -> web.StreamResponse:
        refused = self.check(request, await request.read())
        if refused is not None:
            return refused
        if self.planned:
            return self.planned.popleft()
        return self.success(request)

    def check(self, request: web.Request, body: bytes) -> web.Response | None:
        """The service's own refusal of a request it cannot take, else None."""
        return None

    def success(self, request: web.Request) -> web.Response:
        raise NotImplementedError


class FakeSlack(Fake):
    """https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks"""

    path = SLACK_PATH

    def check(self, request: web.Request, body: bytes) -> web.Response | None:
        if request.path != SLACK_PATH:
            return self.refused(404, "no_service")
        data = json.loads(body)
        if not data.get("text") and not data.get("blocks"):
            return self.refused(400, "no_text")
        return None

    def success(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    @staticmethod
    def rate_limited(wait: str = "0.2") -> web.Response:
        return web.Response(status=429, text="rate_limited", headers={"Retry-After": wait})

    @staticmethod
    def refused(status: int, code: str) -> web.Response:
        return web.Response(status=status, text=code, content_type="text/plain")


class FakeTeams(Fake):
    """A Workflows "When a Teams webhook request is received" trigger."""

    path = f"{TEAMS_PATH}?{TEAMS_QUERY}"

    def check(self, request: web.Request, body: bytes) -> web.Response | None:
        if request.path != TEAMS_PATH:
            return web.Response(status=404)
        if "api-version" not in request.query:
            return self.error(400, "MissingApiVersionParameter")
        if request.raw_path.partition("?")[2] != TEAMS_QUERY:  # the signature covers the query
            return self.error(401, "DirectApiAuthorizationRequired")
        return None

    def success(self, request: web.Request) -> web.Response:
        return web.Response(status=202)

    @staticmethod
    def error(status: int, code: str, headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response({"error": {"code": code, "message": f"{code} happened."}},
                                 status=status, headers=headers)


class FakeDiscord(Fake):
    """https://discord.com/developers/docs/resources/webhook#execute-webhook, with the
    rate limit headers of https://discord.com/developers/docs/topics/rate-limits."""

    path = DISCORD_PATH

    def __init__(self) -> None:
        super().__init__()
        self.remaining = 4
        self.reset_after = 2.0
        self.paths = {DISCORD_PATH}  # the webhooks that exist

    def check(self, request: web.Request, body: bytes) -> web.Response | None:
        if request.path not in self.paths:
            return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)
        data = json.loads(body)
        if len(data.get("content", "")) > 2000:
            return web.json_response({"message": "Invalid Form Body", "code": 50035, "errors": {
                "content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH",
                                         "message": "Must be 2000 or fewer in length."}]}}},
                                     status=400)
        return None

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset-After": f"{self.reset_after:g}",
                "X-RateLimit-Bucket": "abcd1234"}

    def success(self, request: web.Request) -> web.Response:
        if request.query.get("wait") != "true":
            return web.Response(status=204, headers=self.headers())
        message = {"id": "1", "channel_id": "2", "webhook_id": "112233445566778899"}
        return web.json_response(message, headers=self.headers())

    @staticmethod
    def rate_limited(wait: float = 0.2, *, global_: bool = False) -> web.Response:
        body = {"message": "You are being rate limited.", "retry_after": wait, "global": global_}
        headers = {"Retry-After": "1", "X-RateLimit-Scope": "global" if global_ else "user",
                   "Via": "1.1 google"}
        if global_:
            headers["X-RateLimit-Global"] = "true"
        return web.json_response(body, status=429, headers=headers)


class _TelegramHtml(HTMLParser):
    """Telegram's HTML: only its tags, each closed in order."""

    TAGS: Final = frozenset({"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span",
                             "tg-spoiler", "a", "tg-emoji", "code", "pre", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problem: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.TAGS:
            self.problem = f"Unsupported start tag \"{tag}\""
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problem = f"Unexpected end tag \"{tag}\""
        else:
            self.open.pop()


_RESERVED: Final = set("_*[]()~`>#+-=|{}.!")


def markdown_problem(text: str) -> str | None:
    """Why Telegram would refuse a MarkdownV2 text, or None."""
    opened: list[str] = []
    index = 0
    while index < len(text):
        rest = text[index:]
        if rest.startswith("\\"):
            index += 2
            continue
        code = opened[-1] if opened and opened[-1] in ("`", "```") else ""
        marker = next((m for m in ("```", "||", "__", "](", "`", "*", "_", "~", "[", ")")
                       if rest.startswith(m)), None)
        if code:
            if marker == code:
                opened.pop()
            index += len(marker) if marker == code else 1
            continue
        if marker == "](":
            if not opened or opened[-1] != "[":
                return "Character ']' is reserved and must be escaped"
            opened[-1] = "("
        elif marker == ")":
            if not opened or opened[-1] != "(":
                return "Character ')' is reserved and must be escaped"
            opened.pop()
        elif opened and opened[-1] == "(":
            pass  # a link's URL
        elif marker in ("[", "`", "```"):
            opened.append(marker)
        elif marker is not None:
            if opened and opened[-1] == marker:
                opened.pop()
            else:
                opened.append(marker)
        elif text[index] in _RESERVED and not (text[index] == ">" and text[index - 1:index] in ("", "\n")):
            return f"Character '{text[index]}' is reserved and must be escaped with the preceding '\\'"
        index += len(marker) if marker else 1
    return f"Can't find end of the entity starting at {opened[-1]!r}" if opened else None


def visible(text: str, parse_mode: str) -> str:
    """What a chat shows of `text`: its characters without markup."""
    if parse_mode == "HTML":
        return html.unescape(re.sub(r"<[^<>]*>", "", text))
    shown: list[str] = []
    index, in_url = 0, False
    while index < len(text):
        if text[index] == "\\":
            shown.append(text[index + 1:index + 2])
            index += 2
        elif in_url:
            in_url = text[index] != ")"
            index += 1
        elif text.startswith("](", index):
            in_url, index = True, index + 2
        else:
            marker = next((m for m in ("```", "||", "__", "*", "_", "~", "`", "[")
                           if text.startswith(m, index)), "")
            if not marker:
                shown.append(text[index])
            index += len(marker) or 1
    return "".join(shown)


class FakeTelegram(Fake):
    """https://core.telegram.org/bots/api#sendmessage"""

    path = f"/bot{TELEGRAM_TOKEN}/sendMessage"

    def check(self, request: web.Request, body: bytes) -> web.Response | None:
        if request.path != self.path:
            return self.error(404, "Not Found")
        data = json.loads(body)
        text, parse_mode = data.get("text", ""), data.get("parse_mode")
        if parse_mode == "HTML":
            parser = _TelegramHtml()
            parser.feed(text)
            problem = parser.problem or (
                f"Can't find end tag corresponding to start tag \"{parser.open[-1]}\""
                if parser.open else None)
        else:
            problem = markdown_problem(text)
        if problem:
            return self.error(400, f"Bad Request: can't parse entities: {problem}")
        shown = visible(text, parse_mode)
        if not shown.strip():
            return self.error(400, "Bad Request: message text is empty")
        if len(shown.encode("utf-16-le")) // 2 > 4096:
            return self.error(400, "Bad Request: message is too long")
        return None

    def success(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "result": {
            "message_id": len(self.requests), "date": 1705314600,
            "chat": {"id": -1001234567890, "type": "supergroup"}, "text": "…"}})

    @staticmethod
    def error(status: int, description: str, **parameters: Any) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)

    @classmethod
    def rate_limited(cls, wait: float = 0.2) -> web.Response:
        return cls.error(429, f"Too Many Requests: retry after {wait:g}", retry_after=wait)


def write_webhook(root: Path, webhook_id: str, channel: dict[str, Any], *,
                  events: Any = "all") -> Path:
    """A webhook file below `root`/webhooks, as `running_app` reads them."""
    path = root / "webhooks" / f"{webhook_id}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"name": webhook_id, "events": events,
                "channel": {"retry_schedule": [0.05, 0.05, 0.05], **channel}}
    path.write_text(json.dumps(document))
    return path


async def post_events(app: App, events: list[dict[str, Any]]) -> None:
    status, answer = await unix_request(app.settings.socket_path(), "POST", "/events", events)
    assert status == 202, answer


def assert_held(outcome: Outcome, before: float, wait: float) -> None:
    """A 429: retried, and the destination held for `wait` seconds from the answer."""
    assert not outcome.ok and outcome.retry and outcome.status == 429
    assert outcome.hold_until is not None
    assert before + wait <= outcome.hold_until <= time.time() + wait
