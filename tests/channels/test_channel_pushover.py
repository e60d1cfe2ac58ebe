"""The Pushover channel: aioresponses for the public API, one test against a local fake."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from structlog.testing import capture_logs
from yarl import URL

from mailhooks.channels.base import Message, WebhookRef
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.pushover import (
    MAX_MESSAGE_LENGTH,
    MAX_TITLE_LENGTH,
    MAX_URL_LENGTH,
    PushoverChannel,
    PushoverSender,
    message_of,
    title_of,
)
from mailhooks.secrets import Resolved
from mailhooks.settings import Settings
from tests.utils import LOOPBACK, Receiver

from .conftest import SAMPLE_EVENT, SECRETS

API = "https://api.pushover.net/1/messages.json"
TOKEN = SECRETS["${env:PUSHOVER_TOKEN}"]
USER = SECRETS["${env:PUSHOVER_USER}"]
OK_BODY = {"status": 1, "request": "647d2300-702c-4b38-8b2f-d56326ae460b"}

MakePushover = Callable[..., PushoverSender]
MakeMessage = Callable[..., Message]


def sent_form(api: aioresponses, index: int = 0) -> dict[str, str]:
    calls = api.requests[("POST", URL(API))]
    data: dict[str, str] = calls[index].kwargs["data"]
    return data


CLICK = {
    **SAMPLE_EVENT,
    "event": "newsletter_clicked",
    "link_url": "https://shop.example.com/sale?utm_source=mail",
}


async def test_form_fields(
    api: aioresponses, make_pushover: MakePushover, make_message: MakeMessage
) -> None:
    api.post(API, payload=OK_BODY)
    outcome = await make_pushover(sound="cash_register").send(make_message())
    assert outcome.ok and outcome.status == 200 and outcome.error is None
    form = sent_form(api)
    assert form == {
        "token": TOKEN,
        "user": USER,
        "title": "Delivered: recipient@example.com",
        "message": "January Newsletter via mail.example.com\nnode smtp1 · campaign 123",
        "sound": "cashregister",
        "timestamp": "1705314600",
    }


@pytest.mark.parametrize(
    ("sound", "api_sound"),
    [("piano_bar", "pianobar"), ("alien_alarm", "alien"), ("pianobar", "pianobar"),
     ("none", "none"), ("vibrate", "vibrate")],
)
async def test_sound_names(
    api: aioresponses, make_pushover: MakePushover, make_message: MakeMessage,
    sound: str, api_sound: str,
) -> None:
    api.post(API, payload=OK_BODY)
    await make_pushover(sound=sound).send(make_message())
    form = sent_form(api)
    assert form["sound"] == api_sound
    assert "priority" not in form


async def test_mute_is_sound_none_and_low_priority(
    api: aioresponses, make_pushover: MakePushover, make_message: MakeMessage
) -> None:
    api.post(API, payload=OK_BODY)
    await make_pushover(sound="mute").send(make_message())
    form = sent_form(api)
    assert form["sound"] == "none" and form["priority"] == "-1"


async def test_no_sound_sends_none_of_it(
    api: aioresponses, make_pushover: MakePushover, make_message: MakeMessage
) -> None:
    api.post(API, payload=OK_BODY)
    await make_pushover(device="phone,tablet").send(make_message())
    form = sent_form(api)
    assert "sound" not in form and "priority" not in form
    assert form["device"] == "phone,tablet"


async def test_click_events_carry_the_link(
    api: aioresponses, make_pushover: MakePushover, make_message: MakeMessage
) -> None:
    api.post(API, payload=OK_BODY)
    await make_pushover().send(make_message(CLICK))
    form = sent_form(api)
    assert form["title"] == "Clicked: recipient@example.com"
    assert form["url"] == CLICK["link_url"]
    assert form["url_title"] == "Open the link on shop.example.com"


async def test_only_the_first_event_is_sent(
    api: aioresponses, make_pushover: MakePushover, make_message: MakeMessage
) -> None:
    api.post(API, payload=OK_BODY)
    bounce = {**SAMPLE_EVENT, "event": "bounced", "bounce_type": "hard"}
    await make_pushover().send(make_message(bounce, SAMPLE_EVENT))
    assert len(api.requests[("POST", URL(API))]) == 1
    assert sent_form(api)["title"] == "Bounced (hard): recipient@example.com"


async def test_long_fields_are_truncated_and_logged_without_values(
    api: aioresponses, make_pushover: MakePushover, make_message: MakeMessage
) -> None:
    api.post(API, payload=OK_BODY)
    event = {
        **CLICK,
        "email": "r" * 300 + "@example.com",
        "broadcast_name": "N" * 2000,
        "link_url": "https://example.com/" + "p" * 600,
    }
    with capture_logs() as logs:
        outcome = await make_pushover().send(make_message(event))
    assert outcome.ok
    form = sent_form(api)
    assert len(form["title"]) == MAX_TITLE_LENGTH and form["title"].endswith("…")
    assert len(form["message"]) == MAX_MESSAGE_LENGTH
    assert len(form["url"]) == MAX_URL_LENGTH
    truncated = [entry for entry in logs if entry["event"] == "pushover_truncated"]
    assert {entry["field"] for entry in truncated} == {"title", "message", "url"}
    for entry in truncated:
        assert set(entry) >= {"field", "length", "limit", "webhook"}
        assert "NNNN" not in repr(entry) and "pppp" not in repr(entry)
    message_entry = next(entry for entry in truncated if entry["field"] == "message")
    assert message_entry["limit"] == MAX_MESSAGE_LENGTH
    assert message_entry["length"] > MAX_MESSAGE_LENGTH


async def test_refusal_is_permanent_and_names_the_field(
    api: aioresponses, make_pushover: MakePushover, make_message: MakeMessage
) -> None:
    api.post(
        API, status=400,
        payload={"user": "invalid", "errors": ["user identifier is invalid"], "status": 0,
                 "request": "5042853c-402d-4a18-abcb-168734a801de"},
    )
    outcome = await make_pushover().send(make_message())
    assert not outcome.ok and not outcome.retry and outcome.status == 400
    assert outcome.error == "Pushover refused the request: user identifier is invalid"


async def test_refusal_echoing_a_secret_is_scrubbed(
    api: aioresponses, make_pushover: MakePushover, make_message: MakeMessage
) -> None:
    api.post(
        API, status=400,
        payload={"token": "invalid", "errors": [f"application token {TOKEN} is invalid"],
                 "status": 0},
    )
    outcome = await make_pushover().send(make_message())
    assert not outcome.retry
    assert outcome.error == "Pushover refused the request: application token [redacted] is invalid"
    assert TOKEN not in outcome.body_excerpt


async def test_refusal_without_errors_names_the_status(
    api: aioresponses, make_pushover: MakePushover, make_message: MakeMessage
) -> None:
    api.post(API, status=403, body="nope")
    outcome = await make_pushover().send(make_message())
    assert not outcome.retry
    assert outcome.error == "Pushover refused the request: HTTP 403 Forbidden"


async def test_quota_spent_holds_until_reset(
    api: aioresponses, make_pushover: MakePushover, make_message: MakeMessage
) -> None:
    reset = int(time.time()) + 86400 * 3
    api.post(API, status=429, payload={"status": 0, "errors": ["quota"]},
             headers={"X-Limit-App-Reset": str(reset), "X-Limit-App-Remaining": "0"})
    outcome = await make_pushover().send(make_message())
    assert not outcome.ok and outcome.retry and outcome.status == 429
    assert outcome.hold_until == reset
    assert outcome.retry_after is None
    assert outcome.error is not None and "quota" in outcome.error


async def test_quota_spent_without_reset_holds_an_hour(
    api: aioresponses, make_pushover: MakePushover, make_message: MakeMessage
) -> None:
    api.post(API, status=429)
    before = time.time()
    outcome = await make_pushover().send(make_message())
    assert outcome.retry and outcome.hold_until is not None
    assert before + 3600 <= outcome.hold_until <= time.time() + 3600


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [({}, 5), ({"Retry-After": "1"}, 5), ({"Retry-After": "30"}, 30)],
)
async def test_server_errors_retry_no_sooner_than_5s(
    api: aioresponses, make_pushover: MakePushover, make_message: MakeMessage,
    headers: dict[str, str], retry_after: float,
) -> None:
    api.post(API, status=500, headers=headers)
    outcome = await make_pushover().send(make_message())
    assert not outcome.ok and outcome.retry and outcome.status == 500
    assert outcome.retry_after == retry_after
    assert outcome.error == "Pushover: HTTP 500 Internal Server Error"


async def test_network_errors_retry_no_sooner_than_5s(
    api: aioresponses, make_pushover: MakePushover, make_message: MakeMessage
) -> None:
    api.post(API, exception=aiohttp.ServerDisconnectedError())
    outcome = await make_pushover().send(make_message())
    assert not outcome.ok and outcome.retry and outcome.retry_after == 5
    assert outcome.error == "Pushover: the server closed the connection without answering"


async def test_timeout_retries(
    api: aioresponses, make_pushover: MakePushover, make_message: MakeMessage
) -> None:
    api.post(API, exception=TimeoutError())
    outcome = await make_pushover(timeout=2).send(make_message())
    assert outcome.retry and outcome.retry_after == 5
    assert outcome.error == "Pushover: timed out after 2s"


async def test_ok_needs_status_1(
    api: aioresponses, make_pushover: MakePushover, make_message: MakeMessage
) -> None:
    api.post(API, status=200, body="<html>captive portal</html>")
    outcome = await make_pushover().send(make_message())
    assert not outcome.ok and outcome.retry and outcome.retry_after == 5


async def test_remaining_quota_is_reported(
    api: aioresponses, context: ChannelContext, make_pushover: MakePushover,
    make_message: MakeMessage,
) -> None:
    seen: list[float] = []
    context.gauges["pushover_remaining"] = seen.append
    api.post(API, payload=OK_BODY, headers={"X-Limit-App-Remaining": "7496"})
    api.post(API, payload=OK_BODY)  # no header: nothing recorded
    api.post(API, payload=OK_BODY, headers={"X-Limit-App-Remaining": "lots"})
    sender = make_pushover()
    for _ in range(3):
        assert (await sender.send(make_message())).ok
    assert seen == [7496]


async def test_against_a_local_fake_pushover(
    receiver: Receiver, context: ChannelContext, secrets: Resolved,
    make_message: MakeMessage,
) -> None:
    forms: list[dict[str, Any]] = []

    async def fake_pushover(_receiver: Receiver, request: web.Request) -> web.StreamResponse:
        forms.append(dict(await request.post()))
        return web.json_response(OK_BODY, headers={"X-Limit-App-Remaining": "41"})

    receiver.handler = fake_pushover
    context.settings = Settings(
        allow_http=True, egress={"allow": LOOPBACK}, pushover={"api_url": receiver.origin + "/"}
    )
    seen: list[float] = []
    context.gauges["pushover_remaining"] = seen.append
    channel = PushoverChannel(
        type="pushover", user_key="${env:PUSHOVER_USER}", api_token="${env:PUSHOVER_TOKEN}",
        sound="mute",
    )
    sender = PushoverSender(WebhookRef("alerts/bounces", "alerts/bounces"), channel, secrets, context)
    complaint = {**SAMPLE_EVENT, "event": "complaint", "complaint_type": "abuse", "test": True}
    outcome = await sender.send(make_message(complaint))
    assert outcome.ok and outcome.status == 200
    assert seen == [41]
    [request] = receiver.requests
    assert request.path == "/1/messages.json"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert forms == [{
        "token": TOKEN,
        "user": USER,
        "title": "Complaint (abuse): recipient@example.com",
        "message": "[test]\nJanuary Newsletter via mail.example.com\nnode smtp1 · campaign 123",
        "sound": "none",
        "priority": "-1",
        "timestamp": "1705314600",
    }]


@pytest.mark.parametrize(
    ("event", "title"),
    [
        ({"event": "bounced", "bounce_type": "hard"}, "Bounced (hard): r@example.com"),
        ({"event": "bounced"}, "Bounced: r@example.com"),
        ({"event": "complaint", "complaint_type": "abuse"}, "Complaint (abuse): r@example.com"),
        ({"event": "delivered", "bounce_type": "hard"}, "Delivered: r@example.com"),
        ({"event": "newsletter_opened"}, "Opened: r@example.com"),
        ({"event": "transactional_opened"}, "Opened: r@example.com"),
        ({"event": "transactional_clicked"}, "Clicked: r@example.com"),
        ({"event": "received"}, "Received: r@example.com"),
        ({"event": "rejected"}, "Rejected: r@example.com"),
        ({"event": "delayed"}, "Delayed: r@example.com"),
    ],
)
def test_titles(event: dict[str, Any], title: str) -> None:
    assert title_of({"email": "r@example.com", "message_id": "m1", **event}) == title


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"broadcast_name": "Spring Sale"}, "Spring Sale"),
        ({"sending_domain": "mail.example.com"}, "via mail.example.com"),
        ({"sending_node": "smtp2", "bridge": "prod", "dedicated_ip": "192.0.2.10"},
         "node smtp2 · bridge prod · ip 192.0.2.10"),
        ({}, "message m1"),
        ({"test": True}, "[test]\nmessage m1"),
        ({"event": "newsletter_clicked", "link_url": "https://x.example/a"}, "message m1"),
    ],
)
def test_messages(event: dict[str, Any], message: str) -> None:
    base = {"event": "delivered", "email": "r@example.com", "message_id": "m1"}
    assert message_of({**base, **event}) == message


def test_sender_repr_hides_secrets(context: ChannelContext, secrets: Resolved) -> None:
    channel = PushoverChannel(
        type="pushover", user_key="${env:PUSHOVER_USER}", api_token="${env:PUSHOVER_TOKEN}"
    )
    text = repr(PushoverSender(WebhookRef("alerts/bounces", "alerts/bounces"), channel, secrets, context))
    assert TOKEN not in text and USER not in text
