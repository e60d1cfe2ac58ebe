"""The one small interface every channel implements, and what it shares with the dispatcher.

A channel sends one message (one event, or a batch) once and says how it went: success,
a failure that may be retried, or a permanent one. It never sleeps or retries by itself:
`mailhooks.dispatch` owns backoff, jitter, `Retry-After` and the circuit breaker for all
channels, as Alertmanager's retry stage does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import aiohttp
from yarl import URL

from mailhooks.channels.egress import EgressDenied, EgressPolicy
from mailhooks.settings import Settings
from mailhooks.webhooks.models import PushoverChannel, WebChannel

BODY_EXCERPT_BYTES = 512


@dataclass(frozen=True)
class Message:
    """What one request carries.

    `message_id` is Standard Webhooks' `webhook-id`: the same on every retry of a
    delivery (or of a batch with the same members). `body` is the JSON encoded once.
    """

    message_id: str
    events: Sequence[dict[str, Any]]
    body: bytes


@dataclass(frozen=True)
class Outcome:
    """How one attempt went. `error` is one line and never holds a secret."""

    ok: bool
    retry: bool = False
    status: int | None = None
    error: str | None = None
    # Seconds the endpoint asked us to wait (Retry-After), or None.
    retry_after: float | None = None
    # Unix time until which every delivery through this channel's API must wait
    # (Pushover's monthly quota spent), or None.
    hold_until: float | None = None
    body_excerpt: str = ""
    duration_ms: float = 0.0

    @property
    def outcome(self) -> str:
        return "success" if self.ok else ("retry" if self.retry else "permanent_failure")


@dataclass
class ChannelContext:
    """What channels share: HTTP sessions, the config, and hooks for metrics."""

    settings: Settings
    session: aiohttp.ClientSession
    pushover_session: aiohttp.ClientSession
    extras: dict[str, Any] = field(default_factory=dict)


ChannelT = TypeVar("ChannelT", WebChannel, PushoverChannel)


class HttpSender(Generic[ChannelT]):
    """What every channel over HTTP keeps: its webhook and channel, the shared context,
    the URL it posts to, the request timeout and the egress policy."""

    def __init__(self, webhook_id: str, channel: ChannelT, context: ChannelContext, url: URL) -> None:
        self.webhook_id = webhook_id
        self._channel: ChannelT = channel
        self._context = context
        self._url = url
        self._timeout = channel.timeout or context.settings.timeout
        self._client_timeout = aiohttp.ClientTimeout(total=self._timeout)
        self._egress = EgressPolicy.from_settings(context.settings)
        # An IP literal in the URL is checked once; host names are checked on every
        # connection, on the address they resolve to.
        self._denied_literal: EgressDenied | None = None
        try:
            self._egress.check_host(url.host)
        except EgressDenied as denied:
            self._denied_literal = denied

    def __repr__(self) -> str:
        # Never the URL: a query string or a path may carry a token.
        return f"{type(self).__name__}({self.webhook_id!r})"


class Sender(Protocol):
    """A webhook's channel, built once per loaded webhook with its secrets resolved."""

    async def send(self, message: Message) -> Outcome: ...


def excerpt(data: bytes) -> str:
    return data[:BODY_EXCERPT_BYTES].decode("utf-8", errors="replace")
