"""Pushover's `title` and `message` as templates, the usual texts when absent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aioresponses import aioresponses
from yarl import URL

from mailhooks.channels.base import Message
from mailhooks.channels.pushover import MAX_TITLE_LENGTH, PushoverSender
from mailhooks.settings import Settings
from mailhooks.webhooks.load import load_webhooks
from tests.utils import event

API = "https://api.pushover.net/1/messages.json"
OK_BODY = {"status": 1, "request": "647d2300-702c-4b38-8b2f-d56326ae460b"}


def form(api: aioresponses, index: int = 0) -> dict[str, str]:
    data: dict[str, str] = api.requests[("POST", URL(API))][index].kwargs["data"]
    return data


async def test_templates_make_the_title_and_message(
    api: aioresponses, make_pushover: Callable[..., PushoverSender], make_message: Callable[..., Message],
) -> None:
    api.post(API, payload=OK_BODY)
    sender = make_pushover(title="{{ event | upper }} on {{ sending_node }}",
                           message="{{ email }}: {{ diagnostic | default('no details') }}")
    bounce = event(1, event="bounced", sending_node="smtp1", diagnostic="<b>550</b>")
    assert (await sender.send(make_message(bounce))).ok
    sent = form(api)
    assert (sent["title"], sent["message"]) == ("BOUNCED on smtp1", "r1@example.com: <b>550</b>")


async def test_a_blank_template_or_none_gives_the_usual_text(
    api: aioresponses, make_pushover: Callable[..., PushoverSender], make_message: Callable[..., Message],
) -> None:
    api.post(API, payload=OK_BODY)
    api.post(API, payload=OK_BODY)
    await make_pushover(title="{{ campaign_id }}").send(make_message(event(2, event="bounced")))
    await make_pushover().send(make_message(event(3, event="bounced")))
    assert form(api, 0)["title"] == "Bounced: r2@example.com"
    assert form(api, 1)["title"] == "Bounced: r3@example.com"
    assert form(api, 1)["message"] == "message m3"


async def test_a_failing_template_is_permanent(
    api: aioresponses, make_pushover: Callable[..., PushoverSender], make_message: Callable[..., Message],
) -> None:
    outcome = await make_pushover(message="{{ smtp_code + 1 }}").send(make_message(event(4)))
    assert not outcome.ok and not outcome.retry
    assert outcome.error is not None
    assert outcome.error.startswith("Pushover: the template failed: alerts/bounces:1:")


def test_validate_checks_the_templates(tmp_path: Path) -> None:
    (tmp_path / "pushover.yaml").write_text(
        "name: Pushover\n"
        "events: [bounced]\n"
        "channel:\n"
        "  type: pushover\n"
        '  user_key: "${env:PUSHOVER_USER}"\n'
        '  api_token: "${env:PUSHOVER_TOKEN}"\n'
        '  title: "{{ evnt }}"\n'
        f'  message: "{"x" * (MAX_TITLE_LENGTH + 900)}"\n'
    )
    problems = sorted((p.position.line, p.position.column, p.message)
                      for p in load_webhooks(tmp_path, Settings()).problems)
    assert problems == [
        (7, 14, "unknown variable 'evnt'; did you mean 'event'?"),
        (8, 13, "the text of a sample 'bounced' event is 1150 characters, over the 1024 the "
                "service takes; it would be cut when sent"),
    ]
