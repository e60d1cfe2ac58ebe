"""Channel types → what they are. A new channel is one new module and one line here.

The webhook model validates its `channel` by looking its `type` up here, so a channel
registered at run time (a test's throwaway channel) is a channel like the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from pydantic import ValidationInfo, ValidatorFunctionWrapHandler

from mailhooks.channels import discord, pushover, slack, teams, telegram, web
from mailhooks.channels.base import ChannelKind, Sender, WebhookRef
from mailhooks.channels.config import ChannelConfig
from mailhooks.channels.context import ChannelContext
from mailhooks.secrets import Resolved

_KINDS: Final[dict[str, ChannelKind]] = {
    kind.type: kind
    for kind in (
        web.KIND,
        pushover.KIND,
        slack.KIND,
        teams.KIND,
        discord.KIND,
        telegram.KIND,
    )
}
# Called when the set of kinds changes, so what was derived from it (the webhook model's
# schema, its validator) is derived again.
_on_change: list[Callable[[], None]] = []


def kinds() -> Mapping[str, ChannelKind]:
    return _KINDS


def kind_of(channel: ChannelConfig) -> ChannelKind:
    return _KINDS[channel.type]


def register(kind: ChannelKind) -> None:
    """Add a channel type (or replace one of the same `type`)."""
    _KINDS[kind.type] = kind
    for callback in _on_change:
        callback()


def unregister(channel_type: str) -> None:
    _KINDS.pop(channel_type, None)
    for callback in _on_change:
        callback()


def on_change(callback: Callable[[], None]) -> None:
    _on_change.append(callback)


def validate_channel(
    value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
) -> ChannelConfig:
    """The `channel` of a webhook, as the config model of its `type`."""
    if isinstance(value, ChannelConfig):
        return value
    if not isinstance(value, dict):
        raise ValueError("a channel is a mapping with a type")
    channel_type = value.get("type")
    kind = _KINDS.get(channel_type) if isinstance(channel_type, str) else None
    if kind is None:
        raise ValueError(
            f"unknown channel type {channel_type!r}; expected one of {', '.join(sorted(_KINDS))}"
        )
    strict = bool(info.context and info.context.get("strict"))
    return kind.config.model_validate(value, strict=strict, context=info.context)


def build_sender(
    webhook: WebhookRef, channel: ChannelConfig, secrets: Resolved, context: ChannelContext
) -> Sender:
    """The sender of a webhook's channel, with its secrets resolved.

    Raises `ValueError` (e.g. `signing.SigningKeyError`) when the channel cannot be
    built; the message never holds a secret.
    """
    return kind_of(channel).sender(webhook, channel, secrets, context)
