"""What goes into the spool and what comes out: plain records, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple


class SpoolError(Exception):
    """The spool cannot be used: the message says why and what to do."""


class SpoolFull(SpoolError):
    """Intake must wait: answer 503 with Retry-After."""


class NewEvent(NamedTuple):
    """An accepted event on its way into the spool. A named tuple: intake builds one per
    event, at a third of a frozen dataclass's cost."""

    event_id: str
    name: str
    message_id: str
    payload: bytes
    webhook_ids: tuple[str, ...]


class Delivery(NamedTuple):
    """A pending delivery as the dispatcher needs it (a named tuple, like NewEvent and
    AttemptResult: one is made per delivery, on the reader thread and the event loop)."""

    id: int
    webhook_id: str
    event_id: str
    message_id: str
    event_name: str
    payload: bytes
    attempts: int
    created_at: float
    # The webhook-id of the batch this delivery was first sent in, once that batch
    # failed: its retries go out with the same members under the same id.
    batch: str | None = None


class Added(NamedTuple):
    """What one request's events added to the spool: how many of them were new (the
    others repeated an event_id seen before), and their deliveries."""

    events: int
    deliveries: list[Delivery]


class AttemptResult(NamedTuple):
    """What one attempt changed: the new state and, for a retry, when to try again."""

    delivery_id: int
    state: str
    attempts: int
    next_attempt_at: float
    status: int | None
    error: str | None
    batch: str | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    webhook_id: str
    event_id: str
    message_id: str
    event: str
    state: str
    attempts: int
    created_at: float
    updated_at: float
    next_attempt_at: float | None
    last_status: int | None
    last_error: str | None

    def as_json(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


@dataclass(frozen=True)
class SpoolStats:
    pending: int
    failed: int
    oldest_pending_at: float | None
    size_bytes: int
    pending_by_webhook: dict[str, int]


@dataclass(frozen=True)
class Intake:
    """One request's events, queued for the next commit (merged with the others')."""

    events: Sequence[NewEvent]
    received_at: float
    hand_over: bool  # read back the deliveries made, for the lanes


# One attempt's outcome as the commit stores it: state, attempts, next attempt, status,
# error, updated at, delivery id, batch.
OutcomeRow = tuple[str, int, float, int | None, str | None, float, int, str | None]


@dataclass(frozen=True)
class Outcomes:
    """Attempt outcomes, queued for the next commit (merged with the others')."""

    rows: list[OutcomeRow]


@dataclass(frozen=True)
class WebhookState:
    """What the daemon decided about one webhook (SPEC §5 "pause_after")."""

    failing_since: float | None = None
    paused_at: float | None = None
    paused_digest: str | None = None


@dataclass(frozen=True)
class ShareOutcome:
    """What keeping one webhook within its share did: pending deliveries failed (the
    oldest), and failed ones evicted (the oldest)."""

    failed: int
    evicted: int
