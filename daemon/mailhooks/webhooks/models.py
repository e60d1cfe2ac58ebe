"""The typed model of one webhook file. `schema/webhook.schema.json` is generated from it.

Channels are a union discriminated on `type`: a new channel is one new model here and one
module in `mailhooks.channels`.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from mailhooks.events import EventName
from mailhooks.webhooks.secrets import SECRET_REF_PATTERN

MAX_NAME_LENGTH: Final = 100
MAX_URL_LENGTH: Final = 2048
MAX_FILTER_VALUES: Final = 100
MAX_HEADERS: Final = 20
MAX_HEADER_VALUE_LENGTH: Final = 1024
MAX_SECRETS: Final = 5

# Seed sound names → Pushover API names (https://pushover.net/api#sounds).
PUSHOVER_SOUNDS: Final = {
    "mute": "none",
    "vibrate": "vibrate",
    "pushover": "pushover",
    "bike": "bike",
    "bugle": "bugle",
    "cash_register": "cashregister",
    "classical": "classical",
    "cosmic": "cosmic",
    "falling": "falling",
    "gamelan": "gamelan",
    "incoming": "incoming",
    "intermission": "intermission",
    "magic": "magic",
    "mechanical": "mechanical",
    "piano_bar": "pianobar",
    "siren": "siren",
    "space_alarm": "spacealarm",
    "tug_boat": "tugboat",
    "alien_alarm": "alien",
    "climb": "climb",
    "persistent": "persistent",
    "echo": "echo",
    "up_down": "updown",
    "none": "none",
}
SOUND_NAMES: Final = tuple(dict.fromkeys([*PUSHOVER_SOUNDS, *PUSHOVER_SOUNDS.values()]))
Sound = Literal[
    "mute", "vibrate", "pushover", "bike", "bugle", "cash_register", "classical", "cosmic",
    "falling", "gamelan", "incoming", "intermission", "magic", "mechanical", "piano_bar",
    "siren", "space_alarm", "tug_boat", "alien_alarm", "climb", "persistent", "echo",
    "up_down", "none", "cashregister", "pianobar", "spacealarm", "tugboat", "alien", "updown",
]

URL_PATTERN: Final = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]+[^\s]*$"
# Printable text with at least one visible character (no lookahead: pydantic's regex
# engine has none).
NAME_PATTERN: Final = r"^[^\x00-\x08\x0a-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x08\x0a-\x1f\x7f]*$"
HEADER_NAME_PATTERN: Final = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$"
DOMAIN_PATTERN: Final = r"^(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$"  # noqa: E501

SecretRef = Annotated[
    str,
    Field(
        pattern=SECRET_REF_PATTERN,
        description="A reference to a secret: ${env:NAME}, ${file:/abs/path} or ${credential:NAME}.",
    ),
]


def _network(text: str) -> str:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP address or CIDR range (192.0.2.10, 198.51.100.0/28, 2001:db8::/32)"
        ) from None
    return text


FilterValue = Annotated[str, Field(min_length=1, max_length=253)]
DomainValue = Annotated[str, Field(max_length=253, pattern=DOMAIN_PATTERN)]
NetworkValue = Annotated[str, Field(min_length=1, max_length=49), AfterValidator(_network)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Filters(_Strict):
    """Which events reach the webhook: each list matches any of its values; all lists must match."""

    sending_domain: list[DomainValue] | None = Field(
        default=None, min_length=1, max_length=MAX_FILTER_VALUES,
        description="Sending domains, case-insensitive; '*.example.org' matches every subdomain.",
    )
    sending_node: list[FilterValue] | None = Field(
        default=None, min_length=1, max_length=MAX_FILTER_VALUES,
        description="SMTP nodes the email was sent from.",
    )
    bridge: list[FilterValue] | None = Field(
        default=None, min_length=1, max_length=MAX_FILTER_VALUES,
        description="Bridges (SMTP credentials) the email was sent with.",
    )
    dedicated_ip: list[NetworkValue] | None = Field(
        default=None, min_length=1, max_length=MAX_FILTER_VALUES,
        description="Dedicated IPs the email left from: addresses or CIDR ranges.",
    )


class Batch(_Strict):
    """Send a JSON array of events per request instead of one event per request."""

    max_events: int = Field(
        default=100, ge=1, le=10000, description="Send when this many events are waiting."
    )
    max_wait: float = Field(
        default=2, gt=0, le=3600, description="Send when the oldest event has waited this long (s)."
    )


RetrySchedule = Annotated[
    list[Annotated[float, Field(ge=0, le=604800)]],
    Field(min_length=0, max_length=50),
]


class WebChannel(_Strict):
    """POST each event as JSON to an HTTP endpoint, signed as Standard Webhooks says."""

    type: Literal["web"] = Field(description="An HTTP(S) endpoint.")
    url: str = Field(
        min_length=1, max_length=MAX_URL_LENGTH, pattern=URL_PATTERN,
        description="The endpoint; https, or http when the daemon's config sets allow_http.",
    )
    headers: dict[
        Annotated[str, Field(pattern=HEADER_NAME_PATTERN)],
        Annotated[str, Field(max_length=MAX_HEADER_VALUE_LENGTH)],
    ] | None = Field(
        default=None, max_length=MAX_HEADERS,
        description="Extra request headers; credentials as ${env:…}/${file:…}/${credential:…}.",
    )
    secret: SecretRef | Annotated[list[SecretRef], Field(min_length=1, max_length=MAX_SECRETS)] | None = Field(  # noqa: E501
        default=None,
        description="Signing secret reference, or a list of them while rotating keys.",
    )
    timeout: float | None = Field(
        default=None, gt=0, le=300, description="Seconds to wait for an answer (config default)."
    )
    retry_schedule: RetrySchedule | None = Field(
        default=None, description="Seconds before each retry, replacing the daemon's schedule."
    )
    batch: Batch | None = Field(default=None, description="Send events in batches.")


class PushoverChannel(_Strict):
    """Push each event to a phone with Pushover."""

    type: Literal["pushover"] = Field(description="A Pushover notification.")
    user_key: SecretRef = Field(description="Reference to the Pushover user or group key.")
    api_token: SecretRef = Field(description="Reference to the Pushover application token.")
    sound: Sound | None = Field(default=None, description="Notification sound.")
    device: str | None = Field(
        default=None, max_length=25, pattern=r"^[A-Za-z0-9_-]+(,[A-Za-z0-9_-]+)*$",
        description="Only these devices (comma-separated); all of the user's when absent.",
    )
    timeout: float | None = Field(
        default=None, gt=0, le=300, description="Seconds to wait for an answer (config default)."
    )
    retry_schedule: RetrySchedule | None = Field(
        default=None, description="Seconds before each retry, replacing the daemon's schedule."
    )


Channel = Annotated[WebChannel | PushoverChannel, Field(discriminator="type")]


class Webhook(_Strict):
    """One webhook: which email events to send, and where."""

    model_config = ConfigDict(title="mailhooks webhook")

    name: str = Field(
        min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN,
        description="Display name, unique in the directory.",
    )
    status: Literal["active", "inactive"] = Field(
        default="active", description="inactive keeps the file but sends nothing."
    )
    event_type: Literal["email"] = Field(
        default="email", description="The kind of events; email is the only one today."
    )
    events: Literal["all"] | Annotated[list[EventName], Field(min_length=1)] = Field(
        description="The events to send, or all."
    )
    filters: Filters | None = Field(default=None, description="Only events that match these.")
    channel: Channel = Field(description="Where the events go.")

    @property
    def active(self) -> bool:
        return self.status == "active"


def secret_texts(channel: WebChannel | PushoverChannel) -> list[str]:
    """Every string of a channel that may hold secret references."""
    if isinstance(channel, PushoverChannel):
        return [channel.user_key, channel.api_token]
    texts = list((channel.headers or {}).values())
    if isinstance(channel.secret, str):
        texts.append(channel.secret)
    elif channel.secret:
        texts.extend(channel.secret)
    return texts
