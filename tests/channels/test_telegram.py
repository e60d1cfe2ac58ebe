"""The Telegram channel against a local server that answers, and checks, as the Bot API does."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from mailhooks.channels.base import Message, WebhookRef
from mailhooks.channels.chat import MARKER, UrlRefused
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.telegram import (
    MAX_TEXT,
    TelegramChannel,
    TelegramSender,
    html_finish,
    markdown_finish,
    markdown_length,
)
from mailhooks.secrets import Resolved
from mailhooks.settings import Settings
from mailhooks.webhooks.load import load_webhooks
from tests.utils import event, running_app, wait_until

from .chat_fakes import (
    TELEGRAM_TOKEN,
    FakeTelegram,
    assert_held,
    post_events,
    settings_for,
    visible,
    write_webhook,
)
from .conftest import message

REFERENCE = "${credential:telegram-bot}"
WEBHOOK = WebhookRef("alerts/bounces", "Bounce alerts")
CHAT = -1001234567890
BOUNCE = event(1, event="bounced", bounce_type="hard", sending_domain="mail.example.com")
MARKDOWN_MARKER = "… \\(truncated\\)"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
def settings(fake: FakeTelegram) -> Settings:
    return settings_for(telegram={"api_url": fake.origin})


def make(context: ChannelContext, token: str = TELEGRAM_TOKEN, **channel: Any) -> TelegramSender:
    model = TelegramChannel.model_validate(
        {"type": "telegram", "bot_token": REFERENCE, "chat_id": CHAT, **channel})
    return TelegramSender(WEBHOOK, model, Resolved({REFERENCE: token}), context)


def shown(text: str, parse_mode: str = "HTML") -> int:
    return len(visible(text, parse_mode).encode("utf-16-le")) // 2


async def test_delivered_as_html(fake: FakeTelegram, context: ChannelContext) -> None:
    outcome = await make(context).send(message(BOUNCE))
    assert outcome.ok and outcome.status == 200
    [request] = fake.requests
    assert request.path == f"/bot{TELEGRAM_TOKEN}/sendMessage"
    assert fake.received == [{
        "chat_id": CHAT, "parse_mode": "HTML", "link_preview_options": {"is_disabled": True},
        "text": "<b>bounced</b>: r1@example.com (hard)\nvia mail.example.com",
    }]


async def test_markdown_v2_options(fake: FakeTelegram, context: ChannelContext) -> None:
    sender = make(context, parse_mode="MarkdownV2", chat_id="@mail_alerts", message_thread_id=7,
                  disable_notification=True)
    assert (await sender.send(message(BOUNCE))).ok
    assert fake.received == [{
        "chat_id": "@mail_alerts", "parse_mode": "MarkdownV2", "message_thread_id": 7,
        "disable_notification": True, "link_preview_options": {"is_disabled": True},
        "text": "*bounced*: r1@example\\.com \\(hard\\)\nvia mail\\.example\\.com",
    }]


@pytest.mark.parametrize(("parse_mode", "expected"), [
    ("HTML", "<b>&lt;a href=&quot;https://evil.example&quot;&gt;x&lt;/a&gt; &amp;amp; "
             "*bold* @admin</b>"),
    ("MarkdownV2", "*<a href\\=\"https://evil\\.example\"\\>x</a\\> &amp; \\*bold\\* @admin*"),
])
async def test_markup_from_a_field_is_neutralised(
    fake: FakeTelegram, context: ChannelContext, parse_mode: str, expected: str
) -> None:
    text = "<b>{{ diagnostic }}</b>" if parse_mode == "HTML" else "*{{ diagnostic }}*"
    hostile = event(2, diagnostic='<a href="https://evil.example">x</a> &amp; *bold* @admin')
    assert (await make(context, parse_mode=parse_mode, text=text).send(message(hostile))).ok
    assert fake.received[0]["text"] == expected


async def test_html_is_cut_by_what_it_shows_and_stays_valid(
    fake: FakeTelegram, context: ChannelContext
) -> None:
    text = "<b>{{ email }}</b>\n<pre><code>{{ diagnostic }}</code></pre><i>end</i>"
    long = event(3, diagnostic="a<&>é😀" * 1500)
    with capture_logs() as logs:
        outcome = await make(context, text=text).send(message(long))
    assert outcome.ok, outcome.error  # the fake refuses a text it cannot parse, or too long
    sent = fake.received[0]["text"]
    assert sent.endswith(MARKER + "</code></pre>")
    assert MAX_TEXT - 2 <= shown(sent) <= MAX_TEXT  # UTF-16 units: each 😀 counts 2
    assert len(sent) > MAX_TEXT  # the markup itself is not counted
    assert [entry["field"] for entry in logs if entry["event"] == "message_truncated"] == ["text"]


async def test_markdown_v2_is_cut_by_what_it_shows_and_stays_valid(
    fake: FakeTelegram, context: ChannelContext
) -> None:
    text = "*{{ email }}* _{{ diagnostic }}_ ||{{ diagnostic }}||"
    long = event(4, diagnostic="x.y-z!" * 500)
    outcome = await make(context, parse_mode="MarkdownV2", text=text).send(message(long))
    assert outcome.ok, outcome.error
    sent = fake.received[0]["text"]
    assert sent.endswith(MARKDOWN_MARKER + "||")
    assert MAX_TEXT - 2 <= shown(sent, "MarkdownV2") <= MAX_TEXT


def test_markdown_cuts_never_leave_a_link_open() -> None:
    prefix = "*bold* [a link\\.](https://example.com/a_b) [half a lin"
    assert markdown_finish(prefix, MARKDOWN_MARKER) == (
        "*bold* [a link\\.](https://example.com/a_b) " + MARKDOWN_MARKER)
    assert markdown_finish("*x [y](https://exa", "…") == "*x …*"
    assert markdown_finish("`code *not bold", "…") == "`code *not bold…`"
    assert markdown_length("*b* \\. [l](https://x.example/_) `c*`") == len("b . l c*")


def test_html_cuts_close_what_is_open() -> None:
    assert html_finish('<b>x <a href="https://e.example">y <i>z</i> w', "…") == (
        '<b>x <a href="https://e.example">y <i>z</i> w…</a></b>')


async def test_a_batch_is_one_digest(fake: FakeTelegram, context: ChannelContext) -> None:
    events = [event(n, event="bounced" if n % 2 else "delayed") for n in range(500)]
    outcome = await make(context, parse_mode="MarkdownV2").send(Message("b", events, b"[]", batched=True))
    assert outcome.ok, outcome.error
    lines = fake.received[0]["text"].split("\n")
    assert lines[0] == "*500 events: 250 delayed, 250 bounced*"
    assert lines[1] == "• *delayed*: r0@example\\.com"
    assert lines[-1] == "… and 480 more"


async def test_rate_limited_holds_for_retry_after(fake: FakeTelegram, context: ChannelContext) -> None:
    fake.plan(fake.rate_limited(0.2))
    before = time.time()
    outcome = await make(context).send(message(BOUNCE))
    assert_held(outcome, before, 0.2)


@pytest.mark.parametrize(("answer", "error"), [
    (FakeTelegram.error(400, "Bad Request: chat not found"),
     "Telegram refused the message (HTTP 400 Bad Request): Bad Request: chat not found"),
    (FakeTelegram.error(400, "Bad Request: group chat was upgraded to a supergroup chat",
                        migrate_to_chat_id=-1009876543210),
     "Telegram refused the message (HTTP 400 Bad Request): the group is now a supergroup: "
     "set chat_id to -1009876543210"),
    (FakeTelegram.error(401, "Unauthorized"),
     "Telegram refused the message (HTTP 401 Unauthorized): the bot token is not valid (Unauthorized)"),
    (FakeTelegram.error(403, "Forbidden: bot was blocked by the user"),
     "Telegram refused the message (HTTP 403 Forbidden): Forbidden: bot was blocked by the user"),
])
async def test_refusals_are_permanent(
    fake: FakeTelegram, context: ChannelContext, answer: web.Response, error: str
) -> None:
    fake.plan(answer)
    outcome = await make(context).send(message(BOUNCE))
    assert not outcome.ok and not outcome.retry and outcome.error == error


async def test_server_errors_are_retried(fake: FakeTelegram, context: ChannelContext) -> None:
    fake.plan(FakeTelegram.error(500, "Internal Server Error"))
    outcome = await make(context).send(message(BOUNCE))
    assert outcome.retry and outcome.error == "Telegram: Internal Server Error"


async def test_the_token_never_shows(
    fake: FakeTelegram, context: ChannelContext, free_port: int
) -> None:
    fake.plan(FakeTelegram.error(404, f"Not Found: /bot{TELEGRAM_TOKEN}/sendMessage"))
    outcomes = [await make(context).send(message(BOUNCE))]
    context.settings = settings_for(telegram={"api_url": f"http://127.0.0.1:{free_port}"})
    with capture_logs() as logs:
        outcomes.append(await make(context).send(message(BOUNCE)))
    assert outcomes[0].error is not None and "[redacted]" in outcomes[0].error
    assert outcomes[1].error == "Telegram: connection refused"
    sender = make(context)
    texts = [repr(outcome) for outcome in outcomes] + [repr(logs), repr(sender), sender.rate_key]
    assert not any(TELEGRAM_TOKEN in text or "telegramSECRET" in text for text in texts)
    with pytest.raises(UrlRefused) as refused:
        make(context, token="not a token telegramSECRET")
    assert "telegramSECRET" not in str(refused.value)


async def test_every_chat_is_a_destination(context: ChannelContext) -> None:
    assert make(context).rate_key != make(context, chat_id="@other_chat").rate_key
    assert make(context).rate_key.endswith(f":{CHAT}")


async def test_the_daemon_delivers_and_honours_429(
    fake: FakeTelegram, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = short_tmp / "credentials"
    credentials.mkdir()
    (credentials / "telegram-bot").write_text(TELEGRAM_TOKEN + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    write_webhook(short_tmp, "alerts/telegram",
                  {"type": "telegram", "bot_token": REFERENCE, "chat_id": CHAT,
                   "text": "<b>{{ event }}</b> {{ diagnostic }}"})
    fake.plan(fake.rate_limited(0.3))
    with capture_logs() as logs:
        async with running_app(short_tmp, {"telegram": {"api_url": fake.origin}}) as app:
            await post_events(app, [event(1, event="bounced", diagnostic="550 <user@x> unknown")])
            await wait_until(lambda: len(fake.requests) == 2, 10, "a 429, then the message")
    first, second = fake.requests
    assert second.at - first.at >= 0.3
    assert fake.received[1]["text"] == "<b>bounced</b> 550 &lt;user@x&gt; unknown"
    assert "telegramSECRET" not in repr(logs)


def test_validate_counts_a_text_as_telegram_does(tmp_path: Path) -> None:
    # 600 bold letters are 4,800 characters of HTML, and 600 that show: within 4,096.
    def problems(text: str) -> list[str]:
        (tmp_path / "telegram.yaml").write_text(
            "name: Telegram\nevents: [bounced]\nchannel:\n  type: telegram\n"
            '  bot_token: "${credential:telegram-token}"\n  chat_id: -100123\n'
            f'  text: "{text}"\n')
        return [problem.message for problem in load_webhooks(tmp_path, Settings()).problems]

    assert problems("{% for n in range(600) %}<b>x</b>{% endfor %}") == []
    [message] = problems("{% for n in range(5000) %}<b>x</b>{% endfor %}")
    assert message.startswith("the text of a sample 'bounced' event is 5000 characters, over the 4096")
