"""What a source makes of a mail server's records: events, and what it skipped and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Skipped:
    """A record a source did not turn into an event. `kind` is short and stable (it is
    counted, and logged once per kind: `type:AdminBounce`, `malformed`); `detail` is one
    line for a person, never the whole record."""

    kind: str
    detail: str


@dataclass
class Parsed:
    """Events as JSON-ready dicts that `mailhooks.events.Event` validates, in record
    order, and the records skipped."""

    events: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def extend(self, other: Parsed) -> None:
        self.events.extend(other.events)
        self.skipped.extend(other.skipped)
