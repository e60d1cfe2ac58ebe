"""A new channel is one module and one registry line: a channel defined here, in a test
module, is validated, loaded and delivered through by the unchanged daemon."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import Field

from mailhooks.channels import registry
from mailhooks.channels.base import ChannelKind, Message, Outcome, WebhookRef
from mailhooks.channels.config import ChannelConfig
from mailhooks.channels.context import ChannelContext
from mailhooks.documents.schema import validator
from mailhooks.secrets import Resolved
from mailhooks.settings import Settings
from mailhooks.webhooks.load import load_webhooks
from mailhooks.webhooks.models import Webhook
from tests.utils import event, running_app, unix_request, wait_until

SENT: list[tuple[str, str, list[dict[str, Any]]]] = []


class ThrowawayChannel(ChannelConfig):
    """Records what it would send."""

    type: Literal["throwaway"] = Field(description="Kept in memory, for this test.")
    label: str = Field(max_length=20, description="Written beside each message.")


class ThrowawaySender:
    def __init__(self, webhook: WebhookRef, channel: ThrowawayChannel, secrets: Resolved,
                 context: ChannelContext) -> None:
        self.rate_key = f"throwaway:{webhook.id}"
        self.label = channel.label

    async def send(self, message: Message) -> Outcome:
        SENT.append((self.label, message.message_id, list(message.events)))
        return Outcome(ok=True, status=200)


KIND = ChannelKind(type="throwaway", config=ThrowawayChannel, sender=ThrowawaySender, concurrency=1)


@pytest.fixture
def throwaway() -> Iterator[None]:
    SENT.clear()
    registry.register(KIND)
    yield
    registry.unregister("throwaway")


def write(directory: Path, channel: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "memo.yaml").write_text(json.dumps(
        {"name": "Memo", "events": ["bounced"], "channel": channel}
    ))


def test_the_schema_and_the_loader_know_a_registered_channel(throwaway: None, tmp_path: Path) -> None:
    schema = validator(Webhook).schema
    assert isinstance(schema, dict) and "ThrowawayChannel" in schema["$defs"]
    write(tmp_path, {"type": "throwaway", "label": "x" * 21})
    result = load_webhooks(tmp_path, Settings())
    assert [problem.message for problem in result.problems] == [
        "channel.label: too long: 21 characters, at most 20"
    ]
    write(tmp_path, {"type": "throwaway", "label": "ok"})
    assert load_webhooks(tmp_path, Settings()).ok


def test_an_unregistered_channel_type_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"type": "throwaway", "label": "ok"})
    [problem] = load_webhooks(tmp_path, Settings()).problems
    assert "unknown type 'throwaway'" in problem.message


async def test_the_daemon_delivers_through_it(throwaway: None, short_tmp: Path) -> None:
    write(short_tmp / "webhooks", {"type": "throwaway", "label": "memo"})
    async with running_app(short_tmp) as app:
        socket = app.settings.socket_path()
        status, _ = await unix_request(socket, "POST", "/events", [event(1, event="bounced"),
                                                                   event(2, event="delivered")])
        assert status == 202
        await wait_until(lambda: len(SENT) == 1, 10, "the throwaway channel's message")
    [(label, message_id, events)] = SENT
    assert label == "memo" and message_id == "e1" and events[0]["email"] == "r1@example.com"
