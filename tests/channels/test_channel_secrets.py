"""No token, user key, header secret or signature in a log line or an `Outcome.error`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from mailhooks.channels.base import Message, Outcome
from mailhooks.channels.pushover import PushoverSender
from mailhooks.channels.web import WebSender
from tests.utils import Receiver

from .conftest import SAMPLE_EVENT, SECRETS, MockedAPI

API = "https://api.pushover.net/1/messages.json"


def assert_no_secret(texts: list[str], secrets: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {text[:80]!r}…"


async def test_web_channel_leaks_no_secret(
    receiver: Receiver, make_web: Callable[..., WebSender], make_message: Callable[..., Message],
    free_port: int, caplog: pytest.LogCaptureFixture,
) -> None:
    answers = iter([
        web.Response(status=500),
        web.Response(status=302, headers={"Location": "/x?token=" + SECRETS["${env:API_KEY}"]}),
        web.Response(status=410),
        web.Response(status=429, headers={"Retry-After": "5"}),
        web.Response(status=401),
        None,  # stall past the timeout
    ])

    async def respond(_receiver: Receiver, _request: web.Request) -> web.StreamResponse:
        reply = next(answers)
        if reply is None:
            await receiver.release.wait()
            return web.Response()
        return reply

    receiver.handler = respond
    channel: dict[str, Any] = {
        "headers": {"Authorization": "Bearer ${env:API_KEY}", "X-Api-Key": "${env:API_KEY}"},
        "secret": ["${env:SIGNING}", "${env:PLAIN_SIGNING}"],
        "timeout": 0.2,
    }
    senders = [make_web(receiver.origin + "/hook?key=query-secret", **channel)] * 6
    senders.append(make_web(f"http://127.0.0.1:{free_port}/?key=query-secret", **channel))
    outcomes: list[Outcome] = []
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        async with asyncio.timeout(10):
            for sender in senders:
                outcomes.append(await sender.send(make_message()))
    assert not any(outcome.ok for outcome in outcomes)
    signatures = [
        part for request in receiver.requests
        for part in request.headers["webhook-signature"].split(" ")
    ]
    assert len(signatures) == 12
    secrets = [*SECRETS.values(), "query-secret", *(s.removeprefix("v1,") for s in signatures)]
    texts = [repr(entry) for entry in logs] + [caplog.text]
    texts += [outcome.error or "" for outcome in outcomes]
    texts += [repr(outcome).replace(outcome.body_excerpt, "") for outcome in outcomes]
    assert_no_secret(texts, secrets)


async def test_pushover_channel_leaks_no_secret(
    api: MockedAPI, make_pushover: Callable[..., PushoverSender],
    make_message: Callable[..., Message], caplog: pytest.LogCaptureFixture,
) -> None:
    token, user = SECRETS["${env:PUSHOVER_TOKEN}"], SECRETS["${env:PUSHOVER_USER}"]
    api.post(API, status=400, payload={"errors": [f"user {user} is invalid"], "status": 0})
    api.post(API, status=400, payload={"errors": ["application token is invalid"], "status": 0})
    api.post(API, status=429, body=f"token {token}")
    api.post(API, status=500, body=f"token {token} user {user}")
    api.post(API, status=200, payload={"status": 0, "token": token})
    api.post(API, exception=ConnectionResetError(f"reset {token}"))
    long_event = {**SAMPLE_EVENT, "broadcast_name": "x" * 5000}
    outcomes: list[Outcome] = []
    caplog.set_level(logging.DEBUG)
    sender = make_pushover()
    with capture_logs() as logs:
        for _ in range(6):
            outcomes.append(await sender.send(make_message(long_event)))
    assert not any(outcome.ok for outcome in outcomes)
    assert any(entry["event"] == "pushover_truncated" for entry in logs)
    texts = [repr(entry) for entry in logs] + [caplog.text]
    texts += [repr(outcome) for outcome in outcomes]
    assert_no_secret(texts, [token, user])
    assert outcomes[0].error == "Pushover refused the request: user [redacted] is invalid"
