"""The Event model: what comes in over `POST /events` and what goes out to receivers."""

from __future__ import annotations

import os
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

EVENT_NAMES: Final = (
    "received",
    "delivered",
    "bounced",
    "rejected",
    "delayed",
    "newsletter_opened",
    "newsletter_clicked",
    "transactional_opened",
    "transactional_clicked",
    "complaint",
)
EventName = Literal[
    "received",
    "delivered",
    "bounced",
    "rejected",
    "delayed",
    "newsletter_opened",
    "newsletter_clicked",
    "transactional_opened",
    "transactional_clicked",
    "complaint",
]
CLICK_EVENTS: Final = frozenset({"newsletter_clicked", "transactional_clicked"})

# The fields a webhook may filter on; each is an optional string field of Event.
FILTER_FIELDS: Final = ("sending_domain", "sending_node", "bridge", "dedicated_ip")

Scalar = Annotated[str, Field(max_length=1000)] | int | float | bool
MetadataKey = Annotated[str, Field(min_length=1, max_length=100)]
ShortText = Annotated[str, Field(max_length=1000)]


IDS_PER_DRAW: Final = 256
_unused_ids: deque[str] = deque()
# A forked child must not hand out the ids its parent still holds.
os.register_at_fork(after_in_child=_unused_ids.clear)


def new_event_id() -> str:
    """128 random bits as hex: as unique as a UUID4, at a tenth of its cost.

    Drawn from os.urandom 256 at a time: the call releases the GIL, and beside the
    spool's threads the event loop can wait longer to get it back than the id takes.
    A deque's popleft is atomic, so two threads never get the same id."""
    while True:
        try:
            return _unused_ids.popleft()
        except IndexError:
            block = os.urandom(16 * IDS_PER_DRAW).hex()
            _unused_ids.extend(block[start:start + 32] for start in range(0, len(block), 32))


class Event(BaseModel):
    """One email event, as a mail server reports it."""

    # Not frozen: intake fills in event_id and timestamp in place, once per event, which
    # is several times cheaper than a copy on the hot path.
    model_config = ConfigDict(extra="forbid", title="mailhooks event")

    event: EventName = Field(description="What happened to the email.")
    email: str = Field(
        min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$",
        description="The recipient's address.",
    )
    message_id: str = Field(
        min_length=1, max_length=998, description="The email's Message-ID, as the MTA knows it."
    )
    timestamp: datetime | None = Field(
        default=None,
        description="When it happened (ISO 8601); the time mailhooks received it when absent.",
    )
    event_id: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="Unique id of this event; the same id posted again is accepted once.",
    )
    campaign_id: int | str | None = Field(
        default=None, description="The campaign (broadcast) the email belongs to."
    )
    broadcast_name: ShortText | None = Field(
        default=None, description="The campaign's display name."
    )
    sending_domain: str | None = Field(
        default=None, max_length=253, description="The domain the email was sent from."
    )
    sending_node: str | None = Field(
        default=None, max_length=200, description="The SMTP node that sent the email."
    )
    bridge: str | None = Field(
        default=None, max_length=200, description="The bridge (SMTP credentials) used."
    )
    dedicated_ip: str | None = Field(
        default=None, max_length=45, description="The dedicated IP address the email left from."
    )
    link_url: str | None = Field(
        default=None, max_length=8192, description="The link clicked, for click events."
    )
    bounce_type: str | None = Field(
        default=None, max_length=100, description="hard, soft, … for bounced events."
    )
    complaint_type: str | None = Field(
        default=None, max_length=100, description="abuse, fraud, … for complaint events."
    )
    metadata: dict[MetadataKey, Scalar] | None = Field(
        default=None, max_length=50, description="Extra key/value pairs passed through as given."
    )
    test: bool | None = Field(
        default=None, description="True on the sample events sent by `mailhooks test`."
    )

    def fill_in(self, received_at: datetime) -> Event:
        """Give the event what mailhooks adds: a UTC timestamp (the receive time when it
        had none) and an event_id (a new UUID when the sender gave none)."""
        moment = self.timestamp
        if moment is None:
            self.timestamp = received_at
        elif moment.tzinfo is None:
            self.timestamp = moment.replace(tzinfo=UTC)
        elif moment.utcoffset():
            self.timestamp = moment.astimezone(UTC)
        if self.event_id is None:
            self.event_id = new_event_id()
        return self

    def payload(self) -> dict[str, Any]:
        """The body a receiver gets: the seed's fields, optional ones only when set."""
        data: dict[str, Any] = self.model_dump(mode="json", exclude_none=True)
        return data

    def payload_json(self) -> bytes:
        """`payload()` encoded, straight from pydantic's serializer."""
        return self.__pydantic_serializer__.to_json(self, exclude_none=True)


def sample(name: EventName) -> Event:
    """The sample event `mailhooks test` sends: realistic fields, marked as a test."""
    fields: dict[str, Any] = {
        "event": name,
        "email": "recipient@example.com",
        "message_id": "test-message@mailhooks",
        "event_id": f"test_{uuid.uuid4().hex}",
        "timestamp": datetime.now(UTC),
        "campaign_id": 123,
        "broadcast_name": "January Newsletter",
        "sending_domain": "mail.example.com",
        "sending_node": "smtp1",
        "test": True,
    }
    if name in CLICK_EVENTS:
        fields["link_url"] = "https://www.example.com/landing"
    if name == "bounced":
        fields["bounce_type"] = "hard"
    if name == "complaint":
        fields["complaint_type"] = "abuse"
    return Event.model_validate(fields)
