"""Channel type → sender: one registry line per channel."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from mailhooks.channels.base import Sender, WebhookRef
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.pushover import PushoverSender
from mailhooks.channels.registry import build_sender, kinds
from mailhooks.channels.web import WebSender
from mailhooks.secrets import Resolved
from mailhooks.webhooks.models import Webhook
from tests.utils import Receiver


def test_every_channel_kind_names_its_own_config_type() -> None:
    for name, kind in kinds().items():
        assert typing.get_args(kind.config.model_fields["type"].annotation) == (name,)


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
    sender: Sender = build_sender(WebhookRef("team/x", "x"), webhook.channel, secrets, context)
    assert isinstance(sender, kind)
    assert "team/x" in repr(sender)


async def test_built_sender_sends(
    receiver: Receiver, context: ChannelContext, secrets: Resolved, make_message: Any
) -> None:
    webhook = Webhook.model_validate(
        {"name": "x", "events": ["delivered"], "channel": {"type": "web", "url": receiver.origin}}
    )
    sender = build_sender(WebhookRef("x", "x"), webhook.channel, secrets, context)
    outcome = await sender.send(make_message())
    assert outcome.ok and len(receiver.requests) == 1
