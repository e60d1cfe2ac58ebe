"""The Discord channel against a local server that answers as Discord's Execute Webhook does."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError
from structlog.testing import capture_logs

from mailhooks.channels.base import Message, WebhookRef
from mailhooks.channels.chat import MARKER, UrlRefused
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.discord import MAX_CONTENT, MAX_EMBED_TITLE, DiscordChannel, DiscordSender
from mailhooks.secrets import Resolved
from mailhooks.settings import Settings
from tests.utils import event, running_app, wait_until

from .chat_fakes import DISCORD_PATH, FakeDiscord, assert_held, post_events, settings_for, write_webhook
from .conftest import message

REFERENCE = "${env:DISCORD_URL}"
WEBHOOK = WebhookRef("alerts/bounces", "Bounce alerts")
BOUNCE = event(1, event="bounced", bounce_type="soft", diagnostic="452 4.2.2 mailbox full")
NO_MENTIONS: dict[str, list[str]] = {"parse": []}
ZWSP = "\u200b"


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


@pytest.fixture
def settings(fake: FakeDiscord) -> Settings:
    return settings_for(discord={"api_url": fake.origin})


def make(url: str, context: ChannelContext, **channel: Any) -> DiscordSender:
    model = DiscordChannel.model_validate({"type": "discord", "url": REFERENCE, **channel})
    return DiscordSender(WEBHOOK, model, Resolved({REFERENCE: url}), context)


async def test_delivered_without_mentions(fake: FakeDiscord, context: ChannelContext) -> None:
    outcome = await make(fake.url, context).send(message(BOUNCE))
    assert outcome.ok and outcome.status == 200 and outcome.hold_until is None
    [request] = fake.requests
    assert request.path == DISCORD_PATH and request.query == "wait=true"
    assert fake.received == [{
        "allowed_mentions": NO_MENTIONS,
        "content": "**bounced**: r1@example.com (soft)\n452 4.2.2 mailbox full",
        "flags": 4,
    }]


async def test_an_embed(fake: FakeDiscord, context: ChannelContext) -> None:
    embed = {"title": "{{ event | title }}", "description": "**{{ email }}** failed", "color": 0xE74C3C}
    sender = make(fake.url, context, embed=embed, username="Mail alerts",
                  allowed_mentions=["roles"])
    assert (await sender.send(message(BOUNCE))).ok
    assert fake.received == [{
        "allowed_mentions": {"parse": ["roles"]},
        "username": "Mail alerts",
        "embeds": [{"description": "**r1@example.com** failed", "title": "Bounced", "color": 0xE74C3C}],
    }]


async def test_everyone_from_a_field_never_pings(fake: FakeDiscord, context: ChannelContext) -> None:
    hostile = event(2, event="bounced", email="@everyone@example.com",
                    diagnostic="@here <@123456789012345678> <@&42> **bold** [x](https://evil.example)")
    assert (await make(fake.url, context, content="{{ email }} {{ diagnostic }}").send(message(hostile))).ok
    [body] = fake.received
    assert body["allowed_mentions"] == NO_MENTIONS
    assert body["content"] == (
        f"@{ZWSP}everyone@example.com @{ZWSP}here <{ZWSP}@123456789012345678\\> <{ZWSP}@&42\\> "
        "\\*\\*bold\\*\\* \\[x\\]\\(https://evil.example\\)"
    )
    assert "@everyone" not in body["content"] and "<@" not in body["content"]


async def test_a_used_up_window_holds_the_webhook(fake: FakeDiscord, context: ChannelContext) -> None:
    fake.remaining, fake.reset_after = 0, 0.25
    before = time.time()
    outcome = await make(fake.url, context).send(message(BOUNCE))
    assert outcome.ok
    assert outcome.hold_until is not None and before + 0.25 <= outcome.hold_until <= time.time() + 0.25


async def test_429_holds_for_retry_after_from_the_body(fake: FakeDiscord, context: ChannelContext) -> None:
    fake.plan(fake.rate_limited(0.2))
    before = time.time()
    outcome = await make(fake.url, context).send(message(BOUNCE))
    assert_held(outcome, before, 0.2)  # the body's retry_after, not the header's rounded 1
    assert not outcome.hold_service  # this webhook's limit: the others go on
    assert outcome.error == "Discord is rate limiting this destination; holding it for 0.2s"


@pytest.mark.parametrize("answer", [
    FakeDiscord.rate_limited(0.2, global_=True),
    web.json_response({"message": "You are being rate limited.", "retry_after": 0.2}, status=429,
                      headers={"X-RateLimit-Scope": "global"}),
])
async def test_a_global_429_holds_every_discord_webhook(
    fake: FakeDiscord, context: ChannelContext, answer: web.Response
) -> None:
    fake.plan(answer)
    before = time.time()
    outcome = await make(fake.url, context).send(message(BOUNCE))
    assert_held(outcome, before, 0.2)
    assert outcome.hold_service
    assert outcome.error == ("Discord is rate limiting every Discord destination of this host; "
                             "holding them for 0.2s")


@pytest.mark.parametrize(("answer", "error"), [
    (web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404),
     "Discord refused the message (HTTP 404 Not Found): Unknown Webhook (code 10015)"),
    (web.json_response({"message": "Invalid Webhook Token", "code": 50027}, status=401),
     "Discord refused the message (HTTP 401 Unauthorized): Invalid Webhook Token (code 50027)"),
    (web.Response(status=403), "Discord refused the message: HTTP 403 Forbidden"),
])
async def test_refusals_are_permanent(
    fake: FakeDiscord, context: ChannelContext, answer: web.Response, error: str
) -> None:
    fake.plan(answer)
    outcome = await make(fake.url, context).send(message(BOUNCE))
    assert not outcome.ok and not outcome.retry and outcome.error == error


async def test_server_errors_are_retried(fake: FakeDiscord, context: ChannelContext) -> None:
    fake.plan(web.Response(status=502, text="<html>cloudflare</html>"))
    outcome = await make(fake.url, context).send(message(BOUNCE))
    assert outcome.retry and outcome.hold_until is None and outcome.error == "Discord: HTTP 502 Bad Gateway"


async def test_truncated_at_2000_and_never_refused(fake: FakeDiscord, context: ChannelContext) -> None:
    long = event(3, diagnostic="*" * 3000)
    embed = {"title": "{{ diagnostic }}", "description": "{{ email }}"}
    assert (await make(fake.url, context).send(message(long))).ok
    assert (await make(fake.url, context, content="{{ email }}", embed=embed).send(message(long))).ok
    content = fake.received[0]["content"]
    assert MAX_CONTENT - 1 <= len(content) <= MAX_CONTENT and content.endswith(MARKER)
    assert content[: -len(MARKER)].endswith("\\*")  # never half an escape
    title = fake.received[1]["embeds"][0]["title"]
    assert len(title) <= MAX_EMBED_TITLE and title.endswith(MARKER)


async def test_a_batch_is_one_digest(fake: FakeDiscord, context: ChannelContext) -> None:
    events = [event(n, event="bounced", diagnostic="550 " + "x" * 150) for n in range(500)]
    sender = make(fake.url, context, embed={"description": "{{ email }}"})
    assert (await sender.send(Message("b", events, b"[]", batched=True))).ok
    [body] = fake.received
    assert "embeds" not in body and body["flags"] == 4
    lines = body["content"].split("\n")
    assert lines[0] == "**500 events: 500 bounced**"
    assert len(body["content"]) <= MAX_CONTENT
    shown = len(lines) - 2
    assert 5 <= shown < 20 and lines[-1] == f"… and {500 - shown} more"


async def test_the_url_must_be_a_discord_webhook(fake: FakeDiscord, context: ChannelContext) -> None:
    for url in ("https://discord.example/api/webhooks/1/leakedSECRET",
                fake.origin + "/api/channels/1/leakedSECRET"):
        with pytest.raises(UrlRefused) as refused:
            make(url, context)
        assert "leakedSECRET" not in str(refused.value)
        assert str(refused.value).startswith(f"{REFERENCE}: is not a Discord webhook URL")
    make(fake.origin + "/api/v10/webhooks/1/token?thread_id=5", context)


def test_discord_refuses_some_names() -> None:
    with pytest.raises(ValidationError, match="containing 'discord' or 'clyde'"):
        DiscordChannel.model_validate({"type": "discord", "url": REFERENCE, "username": "Discord bot"})


async def test_a_global_429_holds_the_other_discord_webhooks_in_the_daemon(
    fake: FakeDiscord, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_path = DISCORD_PATH.replace("/webhooks/", "/webhooks/9").rsplit("/", 1)[0] + "/otherTOKEN"
    fake.paths.add(other_path)
    monkeypatch.setenv("DISCORD_URL", fake.url)
    monkeypatch.setenv("OTHER_URL", fake.origin + other_path)
    write_webhook(short_tmp, "alerts/bounces", {"type": "discord", "url": REFERENCE}, events=["bounced"])
    write_webhook(short_tmp, "alerts/complaints", {"type": "discord", "url": "${env:OTHER_URL}"},
                  events=["complaint"])
    fake.plan(fake.rate_limited(0.5, global_=True))
    with capture_logs() as logs:
        async with running_app(short_tmp, {"discord": {"api_url": fake.origin}}) as app:
            await post_events(app, [event(1, event="bounced")])
            await wait_until(lambda: any(entry["event"] == "channel_held" for entry in logs), 10,
                             "the global 429 settled")
            await post_events(app, [event(2, event="complaint")])
            await wait_until(lambda: len(fake.requests) == 3, 10, "both messages after the hold")
    limited, *after = fake.requests
    assert sorted(request.path for request in after) == sorted([DISCORD_PATH, other_path])
    # The other webhook waited out the hold too, though Discord never answered it 429.
    assert all(request.at - limited.at >= 0.5 for request in after)


async def test_the_daemon_delivers_and_honours_429(
    fake: FakeDiscord, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISCORD_URL", fake.url)
    write_webhook(short_tmp, "alerts/discord", {"type": "discord", "url": REFERENCE,
                                                "content": "{{ broadcast_name }}"})
    fake.plan(fake.rate_limited(0.3))
    with capture_logs() as logs:
        async with running_app(short_tmp, {"discord": {"api_url": fake.origin}}) as app:
            await post_events(app, [event(1, broadcast_name="@everyone")])
            await wait_until(lambda: len(fake.requests) == 2, 10, "a 429, then the message")
    first, second = fake.requests
    assert second.at - first.at >= 0.3
    assert fake.received[1] == {"allowed_mentions": NO_MENTIONS, "content": f"@{ZWSP}everyone", "flags": 4}
    assert "discordSECRET" not in repr(logs)
