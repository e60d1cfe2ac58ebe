"""Channel types → their senders. A new channel is one new module and one line here."""

from __future__ import annotations

from typing import Any, Final, Protocol

from mailhooks.channels.base import ChannelContext, Sender
from mailhooks.channels.pushover import PushoverSender
from mailhooks.channels.web import WebSender
from mailhooks.webhooks.models import Webhook
from mailhooks.webhooks.secrets import Resolved


class SenderFactory(Protocol):
    """What a channel's sender class is: built once per loaded webhook."""

    def __call__(
        self, webhook_id: str, channel: Any, secrets: Resolved, context: ChannelContext
    ) -> Sender: ...


SENDERS: Final[dict[str, SenderFactory]] = {
    "web": WebSender,
    "pushover": PushoverSender,
}


def build_sender(
    webhook_id: str, webhook: Webhook, secrets: Resolved, context: ChannelContext
) -> Sender:
    """The sender of `webhook`'s channel, with its secrets resolved.

    Raises `ValueError` (e.g. `web.SigningKeyError`) when the channel cannot be built;
    the message never holds a secret.
    """
    factory = SENDERS[webhook.channel.type]
    return factory(webhook_id, webhook.channel, secrets, context)
