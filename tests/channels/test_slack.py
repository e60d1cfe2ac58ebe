"""The Slack channel against a local server that answers as Slack's incoming webhooks do."""

from __future__ import annotations

import json
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
from mailhooks.channels.slack import MAX_BLOCK_TEXT, MAX_TEXT, SlackChannel, SlackSender
from mailhooks.secrets import Resolved
from mailhooks.settings import Settings
from mailhooks.webhooks.load import load_webhooks
from tests.utils import event, running_app, wait_until

from .chat_fakes import SLACK_PATH, FakeSlack, assert_held, post_events, settings_for, write_webhook
from .conftest import message

REFERENCE = "${env:SLACK_URL}"
WEBHOOK = WebhookRef("alerts/bounces", "Bounce alerts")
BOUNCE = event(1, event="bounced", bounce_type="hard", broadcast_name="Spring Sale",
               sending_domain="mail.example.com", diagnostic="550 5.1.1 user unknown")


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


@pytest.fixture
def settings(fake: FakeSlack) -> Settings:
    return settings_for(slack={"api_url": fake.origin})


def make(fake: FakeSlack, context: ChannelContext, **channel: Any) -> SlackSender:
    model = SlackChannel.model_validate({"type": "slack", "url": REFERENCE, **channel})
    return SlackSender(WEBHOOK, model, Resolved({REFERENCE: fake.url}), context)


def batch(events: list[dict[str, Any]]) -> Message:
    return Message("batch_1", events, b"[]", batched=True)


async def test_delivered_as_slack_takes_it(fake: FakeSlack, context: ChannelContext) -> None:
    outcome = await make(fake, context).send(message(BOUNCE))
    assert outcome.ok and outcome.status == 200 and outcome.hold_until is None
    [request] = fake.requests
    assert request.path == SLACK_PATH
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert fake.received == [{
        "text": "*bounced*: r1@example.com (hard)\nSpring Sale via mail.example.com\n"
                "550 5.1.1 user unknown",
        "unfurl_links": False, "unfurl_media": False,
    }]


async def test_template_and_blocks(fake: FakeSlack, context: ChannelContext) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*{{ event }}* from `{{ email }}`"}},
              {"type": "divider"}]
    sender = make(fake, context, text="{{ event }} {{ email }}", blocks=blocks)
    assert (await sender.send(message(BOUNCE))).ok
    assert fake.received[0]["text"] == "bounced r1@example.com"
    assert fake.received[0]["blocks"] == [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*bounced* from `r1@example.com`"}},
        {"type": "divider"},
    ]


async def test_a_blank_template_falls_back_to_the_default(
    fake: FakeSlack, context: ChannelContext
) -> None:
    sender = make(fake, context, text="{{ campaign_id }}")
    assert (await sender.send(message(event(2)))).ok
    assert fake.received[0]["text"] == "*delivered*: r2@example.com"


async def test_mentions_and_links_from_a_field_are_neutralised(
    fake: FakeSlack, context: ChannelContext
) -> None:
    hostile = event(3, event="bounced", email="<!channel>@example.com",
                    diagnostic="<@U024BE7LH> & <https://evil.example|click here> <!here>")
    assert (await make(fake, context).send(message(hostile))).ok
    text = fake.received[0]["text"]
    assert text == ("*bounced*: &lt;!channel&gt;@example.com\n&lt;@U024BE7LH&gt; &amp; "
                    "&lt;https://evil.example|click here&gt; &lt;!here&gt;")
    assert "<" not in text and ">" not in text


async def test_mentions_from_a_field_are_neutralised_in_blocks_too(
    fake: FakeSlack, context: ChannelContext
) -> None:
    # A leaf that is one variable alone, or a typed filter whose default is a field, is a
    # value like any other: escaped (a JSON payload would keep its type instead).
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "{{ diagnostic }}"},
               "fields": [{"type": "mrkdwn", "text": "{{ smtp_code | int(diagnostic) }}"},
                          {"type": "mrkdwn", "text": "{{ metadata }}"}]}]
    hostile = event(3, event="bounced", diagnostic="<!channel> <https://evil.example|x>",
                    metadata={"note": "<!here>"})
    assert (await make(fake, context, blocks=blocks).send(message(hostile))).ok
    block = fake.received[0]["blocks"][0]
    assert block["text"]["text"] == "&lt;!channel&gt; &lt;https://evil.example|x&gt;"
    assert block["fields"][0]["text"] == "&lt;!channel&gt; &lt;https://evil.example|x&gt;"
    assert "<" not in block["fields"][1]["text"]
    assert "<" not in json.dumps(fake.received[0])


async def test_rate_limited_holds_for_retry_after(fake: FakeSlack, context: ChannelContext) -> None:
    fake.plan(fake.rate_limited("0.2"))
    before = time.time()
    outcome = await make(fake, context).send(message(BOUNCE))
    assert_held(outcome, before, 0.2)
    assert outcome.error == "Slack is rate limiting this destination; holding it for 0.2s"


@pytest.mark.parametrize(("status", "code"), [
    (400, "invalid_payload"), (403, "action_prohibited"), (404, "channel_not_found"),
    (404, "no_service"), (410, "channel_is_archived"),
])
async def test_refusals_are_permanent(
    fake: FakeSlack, context: ChannelContext, status: int, code: str
) -> None:
    fake.plan(fake.refused(status, code))
    outcome = await make(fake, context).send(message(BOUNCE))
    assert not outcome.ok and not outcome.retry and outcome.status == status
    assert outcome.error is not None and outcome.error.endswith(f": {code}")


@pytest.mark.parametrize("answer", [
    web.Response(status=500, text="rollup_error"),
    web.Response(status=503, text="<html>down</html>", headers={"Retry-After": "7"}),
    web.Response(status=200, text="<html>a proxy's page</html>"),
])
async def test_server_errors_are_retried(
    fake: FakeSlack, context: ChannelContext, answer: web.Response
) -> None:
    fake.plan(answer)
    outcome = await make(fake, context).send(message(BOUNCE))
    assert not outcome.ok and outcome.retry and outcome.hold_until is None
    assert outcome.retry_after == (7 if answer.status == 503 else None)
    assert "html" not in (outcome.error or "")


async def test_truncated_at_the_limit_and_logged_once(fake: FakeSlack, context: ChannelContext) -> None:
    long = event(4, event="bounced", diagnostic="& " * 3000)
    sender = make(fake, context)
    with capture_logs() as logs:
        for _ in range(3):
            assert (await sender.send(message(long))).ok
    text = fake.received[0]["text"]
    assert len(text) <= MAX_TEXT and text.endswith(MARKER)
    assert text[: -len(MARKER)].endswith("&amp; ")  # never cut inside an entity
    truncated = [entry for entry in logs if entry["event"] == "message_truncated"]
    assert len(truncated) == 1
    assert truncated[0]["limit"] == MAX_TEXT and truncated[0]["length"] > MAX_TEXT
    assert "&amp;" not in repr(truncated)


async def test_block_texts_are_truncated(fake: FakeSlack, context: ChannelContext) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "{{ diagnostic }}"}}]
    sender = make(fake, context, blocks=blocks)
    assert (await sender.send(message(event(5, diagnostic="x" * 5000)))).ok
    text = fake.received[0]["blocks"][0]["text"]["text"]
    assert len(text) == MAX_BLOCK_TEXT and text.endswith(MARKER)


async def test_a_batch_of_500_is_one_digest(fake: FakeSlack, context: ChannelContext) -> None:
    events = [event(n, event="bounced" if n % 25 else "complaint") for n in range(500)]
    outcome = await make(fake, context, text="{{ event }} {{ email }}").send(batch(events))
    assert outcome.ok and len(fake.requests) == 1
    text = fake.received[0]["text"]
    lines = text.split("\n")
    assert lines[0] == "*500 events: 480 bounced, 20 complaint*"
    assert lines[1:4] == ["• complaint r0@example.com", "• bounced r1@example.com",
                          "• bounced r2@example.com"]
    assert lines[-1] == "… and 480 more" and len(lines) == 22
    assert "blocks" not in fake.received[0]


async def test_an_event_whose_template_fails_does_not_fail_the_digest(
    fake: FakeSlack, context: ChannelContext
) -> None:
    # {{ smtp_code + 1 }} fails for an event without smtp_code: that event is shown with the
    # default text, and the others as their template says.
    events = [event(1, event="bounced", smtp_code=550), event(2, event="delivered"),
              event(3, event="bounced", smtp_code=552)]
    with capture_logs() as logs:
        outcome = await make(fake, context, text="code {{ smtp_code + 1 }}").send(batch(events))
    assert outcome.ok, outcome.error
    lines = fake.received[0]["text"].split("\n")
    assert lines[0] == "*3 events: 2 bounced, 1 delivered*"
    assert lines[1] == "• code 551" and lines[3] == "• code 553"
    assert lines[2].startswith("• *delivered*: r2@example.com")
    [logged] = [entry for entry in logs if entry["event"] == "digest_line_template_failed"]
    assert logged["lines"] == 1 and "smtp_code" in logged["error"]


async def test_the_url_must_be_slacks(context: ChannelContext, fake: FakeSlack) -> None:
    model = SlackChannel.model_validate({"type": "slack", "url": REFERENCE})
    elsewhere = "https://hooks.example.com/services/T000/B000/leakedSECRET"
    with pytest.raises(UrlRefused) as refused:
        SlackSender(WEBHOOK, model, Resolved({REFERENCE: elsewhere}), context)
    assert str(refused.value) == (f"{REFERENCE}: is not a Slack incoming webhook URL: the URL must "
                                  f"start with {fake.origin}/services/")
    assert refused.value.reference == REFERENCE and "leakedSECRET" not in str(refused.value)


async def test_the_default_base_url_is_slacks(context: ChannelContext) -> None:
    context.settings = Settings()
    model = SlackChannel.model_validate({"type": "slack", "url": REFERENCE})
    real = "https://hooks.slack.com/services/T000/B000/XXXX"
    sender = SlackSender(WEBHOOK, model, Resolved({REFERENCE: real}), context)
    assert "XXXX" not in repr(sender) and "XXXX" not in sender.rate_key
    assert model.endpoint() == "Slack webhook"
    assert model.destinations(Settings()) == ["https://hooks.slack.com"]


async def test_the_daemon_delivers_paces_and_honours_429(
    fake: FakeSlack, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_URL", fake.url)
    write_webhook(short_tmp, "alerts/slack", {"type": "slack", "url": REFERENCE}, events=["bounced"])
    fake.plan(fake.rate_limited("0.3"))
    with capture_logs() as logs:
        async with running_app(short_tmp, {"slack": {"api_url": fake.origin}}) as app:
            await post_events(app, [event(1, event="bounced"), event(2, event="bounced")])
            await wait_until(lambda: len(fake.requests) == 3, 10, "a 429, then two messages")
    first, second, third = fake.requests
    assert second.at - first.at >= 0.3  # held for Retry-After
    assert third.at - second.at >= 0.9  # one message a second
    # The held event goes again once the hold ends, after the one that was waiting.
    assert sorted(body["text"] for body in fake.received) == [
        "*bounced*: r1@example.com", "*bounced*: r1@example.com", "*bounced*: r2@example.com"]
    assert fake.url not in repr(logs) and "slackSECRET" not in repr(logs)


async def test_the_daemon_sends_a_burst_as_one_digest(
    fake: FakeSlack, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_URL", fake.url)
    write_webhook(short_tmp, "alerts/slack",
                  {"type": "slack", "url": REFERENCE, "batch": {"max_events": 500, "max_wait": 5}})
    async with running_app(short_tmp, {"slack": {"api_url": fake.origin}}) as app:
        await post_events(app, [event(n, event="bounced") for n in range(500)])
        await wait_until(lambda: len(fake.requests) == 1, 10, "one digest")
    assert fake.received[0]["text"].startswith("*500 events: 500 bounced*\n• *bounced*: r0@example.com")


def test_validate_points_at_a_broken_template(tmp_path: Path) -> None:
    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / "slack.yaml").write_text(
        "name: Slack\n"
        "events: [bounced]\n"
        "channel:\n"
        "  type: slack\n"
        '  url: "${credential:slack-bounces-url}"\n'
        "  text: |\n"
        "    *{{ event }}*\n"
        "    {{ emial }}\n"
    )
    [problem] = load_webhooks(tmp_path, Settings()).problems
    assert (problem.position.line, problem.position.column) == (8, 8)
    assert problem.message == "unknown variable 'emial'; did you mean 'email'?"


def test_validate_says_when_a_sample_is_over_the_limit(tmp_path: Path) -> None:
    (tmp_path / "slack.yaml").write_text(
        "name: Slack\n"
        "events: [bounced]\n"
        "channel:\n"
        "  type: slack\n"
        '  url: "${credential:slack-bounces-url}"\n'
        "  text: \"{{ email }} {% for n in range(500) %}0123456789{% endfor %}\"\n"
    )
    [problem] = load_webhooks(tmp_path, Settings()).problems
    assert (problem.position.line, problem.position.column) == (6, 10)
    assert problem.message == ("the text of a sample 'bounced' event is 5022 characters, over the "
                               "4000 the service takes; it would be cut when sent")


def test_a_literal_url_is_refused(tmp_path: Path) -> None:
    (tmp_path / "slack.yaml").write_text(
        "name: Slack\nevents: all\nchannel:\n  type: slack\n"
        "  url: https://hooks.slack.com/services/T000/B000/XXXX\n"
    )
    [problem] = load_webhooks(tmp_path, Settings()).problems
    assert problem.message.startswith("channel.url: a literal secret is not allowed here")
