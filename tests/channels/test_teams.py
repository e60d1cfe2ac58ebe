"""The Teams channel against a local server that answers as a Workflows webhook trigger does."""

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
from mailhooks.channels.teams import MAX_BODY_BYTES, TeamsChannel, TeamsSender
from mailhooks.secrets import Resolved
from mailhooks.settings import Settings
from mailhooks.webhooks.load import load_webhooks
from tests.utils import event, running_app, wait_until

from .chat_fakes import TEAMS_PATH, FakeTeams, assert_held, post_events, settings_for, write_webhook
from .conftest import message

REFERENCE = "${credential:teams-bounces-url}"
WEBHOOK = WebhookRef("alerts/bounces", "Bounce alerts")
BOUNCE = event(1, event="bounced", bounce_type="hard", diagnostic="550 5.1.1 user unknown")
WORKFLOW = ("https://prod-12.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/"
            "invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SIGsecret123")


@pytest.fixture
async def fake() -> AsyncIterator[FakeTeams]:
    async with FakeTeams() as server:
        yield server


@pytest.fixture
def settings(fake: FakeTeams) -> Settings:
    return settings_for(teams={"api_url": fake.origin + "/workflows/"})


def make(url: str, context: ChannelContext, **channel: Any) -> TeamsSender:
    model = TeamsChannel.model_validate({"type": "teams", "url": REFERENCE, **channel})
    return TeamsSender(WEBHOOK, model, Resolved({REFERENCE: url}), context)


def blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    result: list[dict[str, Any]] = card["body"]
    return result


async def test_delivered_as_an_adaptive_card(fake: FakeTeams, context: ChannelContext) -> None:
    outcome = await make(fake.url, context).send(message(BOUNCE))
    assert outcome.ok and outcome.status == 202
    [request] = fake.requests
    assert request.path == TEAMS_PATH and "sig=teamsSECRETsig" in request.query
    [body] = fake.received
    assert body == {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
        "content": {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard", "version": "1.4", "msteams": {"width": "Full"},
            "body": [{"type": "TextBlock", "text": "**bounced**: r1@example.com (hard)\n\n"
                                                   "550 5.1.1 user unknown", "wrap": True}],
        },
    }]}


async def test_title_and_text_templates(fake: FakeTeams, context: ChannelContext) -> None:
    sender = make(fake.url, context, title="Bounce on {{ sending_node }}", text="{{ email }}")
    assert (await sender.send(message(event(2, sending_node="smtp_1")))).ok
    heading, text = blocks(fake.received[0])
    assert heading == {"type": "TextBlock", "text": "Bounce on smtp\\_1", "weight": "Bolder",
                       "size": "Medium", "style": "heading", "wrap": True}
    assert text["text"] == "r2@example.com"


async def test_markdown_from_a_field_is_neutralised(fake: FakeTeams, context: ChannelContext) -> None:
    hostile = event(3, event="bounced",
                    diagnostic="**urgent** [reset your password](https://evil.example)\n- x")
    assert (await make(fake.url, context).send(message(hostile))).ok
    [text] = blocks(fake.received[0])
    assert text["text"].endswith(
        "\\*\\*urgent\\*\\* \\[reset your password\\]\\(https://evil.example\\)\n\\- x")


async def test_the_body_is_kept_under_24_kib(fake: FakeTeams, context: ChannelContext) -> None:
    huge = event(4, diagnostic="é\"_" * 15_000)
    sender = make(fake.url, context, title="{{ diagnostic }}")
    with capture_logs() as logs:
        assert (await sender.send(message(huge))).ok
    [request] = fake.requests
    assert MAX_BODY_BYTES - 64 < len(request.body) <= MAX_BODY_BYTES
    heading, text = blocks(fake.received[0])
    assert heading["text"].endswith(MARKER) and text["text"].endswith(MARKER)
    assert {entry["field"] for entry in logs if entry["event"] == "message_truncated"} == {"title"}


async def test_rate_limited_holds(fake: FakeTeams, context: ChannelContext) -> None:
    fake.plan(fake.error(429, "WorkflowTriggeredTooOften", {"Retry-After": "0.2"}))
    before = time.time()
    outcome = await make(fake.url, context).send(message(BOUNCE))
    assert_held(outcome, before, 0.2)


@pytest.mark.parametrize(("answer", "error"), [
    (FakeTeams.error(401, "DirectApiAuthorizationRequired"),
     "Teams refused the message (HTTP 401 Unauthorized): DirectApiAuthorizationRequired: "
     "DirectApiAuthorizationRequired happened."),
    (web.Response(status=404),
     "Teams refused the message (HTTP 404 Not Found): the workflow was deleted or turned off"),
    (web.Response(status=413), "Teams refused the message: HTTP 413 Request Entity Too Large"),
])
async def test_refusals_are_permanent(
    fake: FakeTeams, context: ChannelContext, answer: web.Response, error: str
) -> None:
    fake.plan(answer)
    outcome = await make(fake.url, context).send(message(BOUNCE))
    assert not outcome.ok and not outcome.retry and outcome.error == error


async def test_a_mangled_signature_is_refused_by_the_service(
    fake: FakeTeams, context: ChannelContext
) -> None:
    outcome = await make(fake.url.replace("&sv=", "&amp;sv="), context).send(message(BOUNCE))
    assert not outcome.retry and outcome.status == 401
    assert outcome.error is not None and "teamsSECRET" not in outcome.error


async def test_server_errors_are_retried(fake: FakeTeams, context: ChannelContext) -> None:
    fake.plan(web.Response(status=502))
    outcome = await make(fake.url, context).send(message(BOUNCE))
    assert outcome.retry and outcome.error == "Teams: HTTP 502 Bad Gateway"


async def test_a_batch_is_one_digest_card(fake: FakeTeams, context: ChannelContext) -> None:
    events = [event(n, event="newsletter_opened") for n in range(30)]
    outcome = await make(fake.url, context).send(Message("b1", events, b"[]", batched=True))
    assert outcome.ok
    heading, text = blocks(fake.received[0])
    assert heading["text"] == "30 events: 30 newsletter\\_opened"
    lines = text["text"].split("\n\n")
    assert lines[0] == "• **newsletter\\_opened**: r0@example.com"
    assert lines[-1] == "… and 10 more" and len(lines) == 21


async def test_a_digest_line_carries_the_title(fake: FakeTeams, context: ChannelContext) -> None:
    events = [event(n, event="bounced") for n in range(2)]
    sender = make(fake.url, context, title="{{ email }}", text="{{ event }}")
    assert (await sender.send(Message("b2", events, b"[]", batched=True))).ok
    heading, text = blocks(fake.received[0])
    assert heading["text"] == "2 events: 2 bounced"
    assert text["text"] == "• **r0@example.com** bounced\n\n• **r1@example.com** bounced"


@pytest.mark.parametrize("url", [
    "https://acme.webhook.office.com/webhookb2/g@t/IncomingWebhook/abc/owner",
    "https://outlook.office.com/webhook/g@t/IncomingWebhook/abc/owner",
])
async def test_a_connector_url_is_refused_when_resolved(url: str, context: ChannelContext) -> None:
    context.settings = Settings()
    with pytest.raises(UrlRefused) as refused:
        make(url, context)
    assert str(refused.value).startswith(f"{REFERENCE}: is an Office 365 connector URL; Microsoft "
                                         "retired those connectors")
    assert "abc" not in str(refused.value)


async def test_only_workflow_hosts_are_accepted(context: ChannelContext) -> None:
    context.settings = Settings()
    assert make(WORKFLOW, context).rate_key.startswith("teams:")
    new_host = "https://default1234.56.environment.api.powerplatform.com:443/powerautomate/x?sig=S"
    make(new_host, context)
    for url in ("https://evil.example/workflows/x?sig=S", WORKFLOW.replace("https", "http")):
        with pytest.raises(UrlRefused, match="is not a Teams Workflows webhook URL"):
            make(url, context)
    assert TeamsChannel(type="teams", url=REFERENCE).destinations(Settings()) == []


def test_a_literal_connector_url_is_refused_by_validate(tmp_path: Path) -> None:
    (tmp_path / "teams.yaml").write_text(
        "name: Teams\nevents: [bounced]\nchannel:\n  type: teams\n"
        "  url: https://acme.webhook.office.com/webhookb2/g@t/IncomingWebhook/abc/owner\n"
    )
    problems = load_webhooks(tmp_path, Settings()).problems
    assert {(p.position.line, p.position.column) for p in problems} == {(5, 8)}
    assert [p.message for p in problems] == [
        "channel.url: a literal secret is not allowed here; write a reference instead: "
        "${env:NAME}, ${file:/absolute/path} or ${credential:NAME} (systemd LoadCredential=)",
        "channel.url: is an Office 365 connector URL; Microsoft retired those connectors. In "
        "Teams, add the Workflows template 'Send webhook alerts to a channel' and use the URL it gives",
    ]


async def test_the_daemon_delivers_a_card(
    fake: FakeTeams, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAMS_URL", fake.url)
    write_webhook(short_tmp, "alerts/teams", {"type": "teams", "url": "${env:TEAMS_URL}",
                                              "title": "{{ event | upper }}"})
    fake.plan(fake.error(429, "Throttled", {"Retry-After": "0.2"}))
    with capture_logs() as logs:
        async with running_app(short_tmp, {"teams": {"api_url": fake.origin}}) as app:
            await post_events(app, [event(1, event="complaint", complaint_type="abuse")])
            await wait_until(lambda: len(fake.requests) == 2, 10, "a 429, then the card")
    first, second = fake.requests
    assert second.at - first.at >= 0.2
    heading, text = blocks(fake.received[1])
    assert heading["text"] == "COMPLAINT"
    assert text["text"] == "**complaint**: r1@example.com (abuse)"
    assert "teamsSECRET" not in repr(logs)
