"""What a source makes of a mail server's records: events, and what it skipped and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from mailhooks.events import Event
from mailhooks.sources.fields import MAX_DETAIL, compact, one_line

# The kind of a Skipped for an event a source built that SPEC §4 refuses.
INVALID: Final = "invalid-event"
# A whole list in one call into pydantic's core: cheaper than a call an event.
_EVENTS: Final = TypeAdapter(list[Event])


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

    def add(self, outcome: dict[str, Any] | Skipped) -> Parsed:
        """One event, or why there is none; the Parsed itself, to chain."""
        if isinstance(outcome, Skipped):
            self.skipped.append(outcome)
        else:
            self.events.append(outcome)
        return self


def skipped(kind: str, detail: str) -> Skipped:
    """A Skipped, its detail cut to one short line."""
    return Skipped(kind, one_line(detail, MAX_DETAIL))


def skip(kind: str, detail: str) -> Parsed:
    """Nothing but one Skipped."""
    return Parsed(skipped=[skipped(kind, detail)])


def _refusal(error: ValidationError, event: object) -> Skipped:
    """Why Event refused an event: its name and the first field, never the whole event."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "event"
    return Skipped(INVALID, one_line(f"{event}: {where}: {first['msg']}", MAX_DETAIL))


def checked(fields: dict[str, Any]) -> dict[str, Any] | Skipped:
    """The event without the fields it lacks, if `mailhooks.events.Event` takes it; else
    why not: a source never hands on an event the daemon would refuse."""
    fields = compact(fields)
    try:
        Event.model_validate(fields)
    except ValidationError as error:
        return _refusal(error, fields.get("event"))
    return fields


def validated(parsed: Parsed) -> tuple[list[Event], list[Skipped]]:
    """The parsed events as `Event`s; one a source made that SPEC §4 refuses (it should
    not happen) is skipped as `invalid-event`, naming the first field."""
    skipped = list(parsed.skipped)
    try:  # all of them at once, the usual case
        return _EVENTS.validate_python(parsed.events), skipped
    except ValidationError:
        pass
    events: list[Event] = []
    for data in parsed.events:
        try:
            events.append(Event.model_validate(data))
        except ValidationError as error:
            skipped.append(_refusal(error, data.get("event")))
    return events, skipped
