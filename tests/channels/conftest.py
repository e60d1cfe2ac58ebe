"""Fixtures for the channels: pooled sessions, senders, mocked Pushover answers (the
receiver on 127.0.0.1 is the shared one in tests/conftest.py)."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from mailhooks.channels.base import Message, WebhookRef
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.pushover import PushoverChannel, PushoverSender
from mailhooks.channels.web import WebChannel, WebSender
from mailhooks.secrets import Resolved
from mailhooks.settings import Settings
from tests.utils import LOOPBACK

# The secrets every test uses, by reference. Distinct, greppable values.
SECRETS = {
    "${env:API_KEY}": "api-key-5f1c0b9e",
    "${env:SIGNING}": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "${env:PLAIN_SIGNING}": "plain-signing-secret-77aa",
    "${env:PUSHOVER_TOKEN}": "azGDORePK8gMaC0QOYAMyEEuzJnyUi",
    "${env:PUSHOVER_USER}": "uQiRzpo4DXghDmr9QzzfQu27cmVRsG",
}

SAMPLE_EVENT: dict[str, Any] = {
    "event": "delivered",
    "timestamp": "2024-01-15T10:30:00Z",
    "email": "recipient@example.com",
    "message_id": "abc123xyz",
    "event_id": "4b1e7c1e-0b1a-4d52-9a57-3c4f1d2e5a6b",
    "campaign_id": 123,
    "broadcast_name": "January Newsletter",
    "sending_domain": "mail.example.com",
    "sending_node": "smtp1",
}

@pytest.fixture
def settings() -> Settings:
    """Loopback receivers need http and an empty egress.deny."""
    return Settings(allow_http=True, egress={"allow": LOOPBACK})


@pytest.fixture
async def context(settings: Settings) -> AsyncIterator[ChannelContext]:
    context = ChannelContext(settings)
    yield context
    await context.close()


@pytest.fixture
def secrets() -> Resolved:
    return Resolved(SECRETS)


def message(*events: dict[str, Any], message_id: str = "msg_2Qx7kXhX4c") -> Message:
    chosen = list(events) or [SAMPLE_EVENT]
    payload: Any = chosen[0] if len(chosen) == 1 else chosen
    return Message(message_id, chosen, json.dumps(payload, separators=(",", ":")).encode())


@pytest.fixture
def make_message() -> Callable[..., Message]:
    return message


@pytest.fixture
def make_web(
    context: ChannelContext, secrets: Resolved
) -> Callable[..., WebSender]:
    def build(url: str, **channel: Any) -> WebSender:
        model = WebChannel.model_validate({"type": "web", "url": url, **channel})
        return WebSender(WebhookRef("crm/opens", "CRM opens"), model, secrets, context)

    return build


@pytest.fixture
def make_pushover(
    context: ChannelContext, secrets: Resolved
) -> Callable[..., PushoverSender]:
    def build(**channel: Any) -> PushoverSender:
        model = PushoverChannel.model_validate(
            {
                "type": "pushover",
                "user_key": "${env:PUSHOVER_USER}",
                "api_token": "${env:PUSHOVER_TOKEN}",
                **channel,
            }
        )
        return PushoverSender(WebhookRef("alerts/bounces", "Bounces"), model, secrets, context)

    return build


@pytest.fixture
def free_port() -> Iterator[int]:
    """A port that was bound and closed: nothing listens there (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    yield port


class _SentWriter:
    """Stands in for the request writer of a request already sent."""

    output_size = 0


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 predates aiohttp 3.14's required `stream_writer` argument."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _SentWriter())
        super().__init__(method, url, **kwargs)


class MockedAPI(aioresponses):
    """aioresponses whose mocked answers work with the installed aiohttp."""

    def add(self, url: Any, method: str = "GET", *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", _CompatResponse)
        super().add(url, method, *args, **kwargs)


@pytest.fixture
def api() -> Iterator[MockedAPI]:
    """Mocked HTTP answers (Pushover's public API) for every ClientSession."""
    mocked = MockedAPI()
    with mocked:
        yield mocked
