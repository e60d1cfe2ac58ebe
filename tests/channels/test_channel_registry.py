"""Channel type → sender: one registry line per channel."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from mailhooks.channels.base import ChannelContext, Sender
from mailhooks.channels.pushover import PushoverSender
from mailhooks.channels.registry import SENDERS, build_sender
from mailhooks.channels.web import WebSender
from mailhooks.webhooks.models import Channel, Webhook
from mailhooks.webhooks.secrets import Resolved
from tests.utils import Receiver


def channel_types() -> set[str]:
    union = typing.get_args(Channel)[0]
    return {
        typing.get_args(model.model_fields["type"].annotation)[0]
        for model in typing.get_args(union)
    }


def test_every_channel_type_has_a_sender() -> None:
    assert set(SENDERS) == channel_types() == {"web", "pushover"}


@pytest.mark.parametrize(
    ("channel", "kind"),
    [
        ({"type": "web", "url": "https://crm.example.com/hook", "secret": "${env:SIGNING}"},
         WebSender),
        ({"type": "pushover", "user_key": "${env:PUSHOVER_USER}",
          "api_token": "${env:PUSHOVER_TOKEN}"}, PushoverSender),
    ],
)
def test_build_sender(
    context: ChannelContext, secrets: Resolved, channel: dict[str, Any], kind: type
) -> None:
    webhook = Webhook.model_validate({"name": "x", "events": "all", "channel": channel})
    sender: Sender = build_sender("team/x", webhook, secrets, context)
    assert isinstance(sender, kind)
    assert "team/x" in repr(sender)


async def test_built_sender_sends(
    receiver: Receiver, context: ChannelContext, secrets: Resolved, make_message: Any
) -> None:
    webhook = Webhook.model_validate(
        {"name": "x", "events": ["delivered"], "channel": {"type": "web", "url": receiver.origin}}
    )
    outcome = await build_sender("x", webhook, secrets, context).send(make_message())
    assert outcome.ok and len(receiver.requests) == 1
