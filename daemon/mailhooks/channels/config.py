"""What every channel's config shares: the base model, and the field types channels use.

A channel module declares its own config model (a subclass of `ChannelConfig`, with its
`type` as a Literal) beside its sender, as Alertmanager keeps `notify/pushover/config.go`
beside the notifier. The webhook model takes any registered one (`channels.registry`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field
from yarl import URL

from mailhooks.documents.schema import describe_pattern
from mailhooks.secrets import SecretRef as SecretRef
from mailhooks.settings import Settings
from mailhooks.templates import Mode

MAX_URL_LENGTH: Final = 2048
URL_PATTERN: Final = describe_pattern(
    r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]+[^\s]*$",
    "is not an http(s) URL with a host name (and no spaces or line breaks)",
)

# Header names whose values are credentials: a webhook file must write them as references,
# never literals; what shows a request's headers (listen --json) withholds their values.
CREDENTIAL_HEADER: Final = re.compile(
    r"authorization|cookie|token|secret|password|passwd|api[-_]?key|auth|signature|session",
    re.IGNORECASE,
)

RetrySchedule = Annotated[
    list[Annotated[float, Field(ge=0, le=604800)]],
    Field(min_length=0, max_length=50),
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Batch(StrictModel):
    """Send events in batches: a JSON array per request, or one digest message in a chat."""

    max_events: int = Field(
        default=100, ge=1, le=10000, description="Send when this many events are waiting."
    )
    max_wait: float = Field(
        default=2, gt=0, le=3600, description="Send when the oldest event has waited this long (s)."
    )


@dataclass(frozen=True)
class TemplateField:
    """A template in a channel's config: where it is (its path in the webhook document),
    what it is (text, or a payload mapping whose leaves are templates), how its values
    are escaped, at most how many characters its service takes (a message over it is
    truncated when sent; `validate` says so when a sample already is), and whether it is
    rendered once for a whole batch rather than for each event (`per_batch`; then `items`
    is the path of the template each event is rendered with first, if any)."""

    path: tuple[str | int, ...]
    source: Any
    mode: Mode
    payload: bool = False
    max_chars: int | None = None
    per_batch: bool = False
    items: tuple[str | int, ...] | None = None
    # How the service counts a text against max_chars (Telegram: what shows, not its tags).
    measure: Callable[[str], int] = len


class ChannelConfig(StrictModel):
    """Where one webhook's events go; each channel type subclasses it."""

    type: str
    timeout: float | None = Field(
        default=None, gt=0, le=300, description="Seconds to wait for an answer (config default)."
    )
    retry_schedule: RetrySchedule | None = Field(
        default=None, description="Seconds before each retry, replacing the daemon's schedule."
    )
    max_pending: int | None = Field(
        default=None, ge=1, le=100_000_000,
        description="Pending deliveries kept at most, and failed ones (the config's spool share).",
    )
    pause_after: float | None = Field(
        default=None, ge=1, le=31536000,
        description="Seconds of failing only before the daemon pauses it (the config's).",
    )

    def secret_texts(self) -> list[str]:
        """Every string of the channel that may hold secret references."""
        return []

    def batching(self) -> Batch | None:
        """How events are batched, or None for one event per request."""
        return None

    def endpoint(self) -> str:
        """Where the events go, for people (lists, reports): never a secret, never a
        URL's query string (which may carry a token)."""
        return self.type

    def templates(self) -> list[TemplateField]:
        """The templates the channel renders, compiled and checked at every load."""
        return []

    def stand_in(self, reference: str, settings: Settings) -> str | None:
        """A value the sender accepts where `reference` is used, for `preview` on a host
        without the secret; None when any text will do."""
        return None

    def destinations(self, settings: Settings) -> list[str]:
        """The origins (`https://host[:port]`) the channel's requests, and so its
        secrets, go to: what `secrets.grants` destinations are checked against. A
        channel whose URL is itself a secret names its service's fixed origin."""
        return []


def origin(url: str) -> str:
    """`https://crm.example.com` of `https://crm.example.com/hooks?token=…`: scheme, host
    and a port other than the scheme's default; nothing that may carry a secret."""
    parsed = URL(url)
    host = parsed.raw_host or ""
    shown = f"[{host}]" if ":" in host else host
    port = parsed.explicit_port
    default = {"http": 80, "https": 443}.get(parsed.scheme.lower())
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parsed.scheme.lower()}://{shown.lower()}{suffix}"


def without_query(url: str) -> str:
    """The URL for people: no user info, query string or fragment."""
    parsed = URL(url)
    return str(parsed.with_user(None).with_query(None).with_fragment(None))
