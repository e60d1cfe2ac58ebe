"""The one small interface every channel implements, and the traits it declares.

A channel sends one message (one event, or a batch) once and says how it went: success,
a failure that may be retried, or a permanent one. It never sleeps or retries by itself:
`mailhooks.delivery` owns backoff, jitter, `Retry-After`, holds, rate limits and the
circuit breaker for all channels, as Alertmanager's retry stage does. What the delivery
machinery needs to know of a channel (how many requests at once, how many connections,
its service's rate limit) the channel declares in its `ChannelKind`; nothing outside
`channels/` asks which channel it has.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from mailhooks.channels.config import ChannelConfig
from mailhooks.documents.positions import SchemaProblem
from mailhooks.secrets import Resolved
from mailhooks.templates import NO_PLACES, Places, Where

if TYPE_CHECKING:
    from mailhooks.channels.context import ChannelContext


@dataclass(frozen=True)
class Message:
    """What one request carries.

    `message_id` is Standard Webhooks' `webhook-id`: the same on every retry of a
    delivery (or of a batch with the same members). `body` is the events as the seed's
    JSON, encoded once (an array for a batch).
    """

    message_id: str
    events: Sequence[dict[str, Any]]
    body: bytes
    batched: bool = False


@dataclass(frozen=True)
class Outcome:
    """How one attempt went. `error` is one line and never holds a secret."""

    ok: bool
    retry: bool = False
    status: int | None = None
    error: str | None = None
    # Seconds the endpoint asked us to wait (Retry-After), or None.
    retry_after: float | None = None
    # Unix time until which every delivery to this sender's destination (its
    # `rate_key`) must wait without spending an attempt: a spent quota, a 429.
    hold_until: float | None = None
    # The hold is on every destination of this channel type, not one: the service limits
    # this host as a whole (Discord's global rate limit).
    hold_service: bool = False
    body_excerpt: str = ""
    duration_ms: float = 0.0

    @property
    def outcome(self) -> str:
        return "success" if self.ok else ("retry" if self.retry else "permanent_failure")


class WebhookRef(NamedTuple):
    """The webhook a sender works for, as templates and log lines name it, and where its
    templates are in its file."""

    id: str
    name: str
    file: str = ""
    places: Places = NO_PLACES

    def where(self, path: tuple[str | int, ...]) -> Where:
        """Where the template at `path` in the webhook's document starts, so an error
        rendering it at delivery reads `file:line:col` as `validate`'s do; a template that
        is not in the file (a channel's default text) is named by the webhook's id."""
        place = self.places.get(path)
        if place is None or not self.file:
            return Where(self.id)
        return Where(self.file, *place)


class Sender(Protocol):
    """A webhook's channel, built once per loaded webhook with its secrets resolved."""

    # Deliveries to the same destination (a Slack webhook, a Telegram chat, Pushover's
    # API with one app token) share a rate limit and holds, across webhooks.
    rate_key: str

    async def send(self, message: Message) -> Outcome: ...


class SenderFactory(Protocol):
    def __call__(
        self, webhook: WebhookRef, channel: Any, secrets: Resolved, context: ChannelContext
    ) -> Sender: ...


@dataclass(frozen=True)
class Rate:
    """A service's documented pace for one destination: `per_second` on average, with
    bursts of `burst`; and, for services that also count per minute, `per_minute`."""

    per_second: float
    burst: int = 1
    per_minute: int | None = None


# Checks of a channel's raw mapping that the schema cannot express (URL rules, header
# rules), given the settings that matter (allow_http).
CheckRaw = Callable[[dict[str, Any], "CheckOptions"], Iterator[SchemaProblem]]


@dataclass(frozen=True)
class CheckOptions:
    allow_http: bool = False


@dataclass(frozen=True)
class ChannelKind:
    """Everything the rest of mailhooks knows of a channel type."""

    type: str
    config: builtins.type[ChannelConfig]
    sender: SenderFactory
    # Requests in flight at once per webhook (one for a batching webhook: a batch is
    # retried whole, in order).
    concurrency: int = 8
    # Connections the channel type's HTTP session keeps, for all its webhooks.
    connections: int = 256
    rate: Rate | None = None
    check: CheckRaw | None = None
