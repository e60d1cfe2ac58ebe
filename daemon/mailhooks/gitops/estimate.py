"""What a merge will cost: deliveries per hour the change adds per destination, from the
per-event counters of a running daemon (`GET /metrics`, or a saved copy of it).

The rate of an event is `mailhooks_events_received_total{event}` over the seconds since
`mailhooks_start_time_seconds`: an average since the daemon started, on the host that was
measured. Each event that newly reaches a destination through a webhook adds one
delivery per event there (a batch carries several in one request); filters select among
the events, so with filters the number is an upper bound. When a webhook's filters widen
or narrow, how many more or fewer events they let through is not in the counters: every
event of the types concerned is counted, and the destination says what is unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from prometheus_client.parser import text_string_to_metric_families

from mailhooks.events import EVENT_NAMES
from mailhooks.gitops.model import DestinationCost, Diff, Estimate, Rate, Unknown
from mailhooks.text import one_line

RECEIVED: Final = "mailhooks_events_received_total"
STARTED: Final = "mailhooks_start_time_seconds"
MAX_METRICS_BYTES: Final = 64 * 1024 * 1024
MAX_COUNT: Final = 2**53
MAX_QUOTED: Final = 200
UNKNOWN: Final[tuple[Unknown, ...]] = ("filters widened", "filters narrowed")


class MetricsError(ValueError):
    """Text that is not the daemon's `/metrics`: the message says what is missing."""


@dataclass(frozen=True)
class Rates:
    """Events per hour by event name, measured at `measured_at` over `seconds`."""

    source: str
    measured_at: datetime
    seconds: float
    per_hour: dict[str, float]
    saved: bool


def _count(event: str, value: float) -> float:
    """A counter's value, or MetricsError naming the sample: NaN, an infinity, a negative
    number or one past 2**53 (where a float stops counting one by one) is no daemon's."""
    if not (math.isfinite(value) and 0 <= value <= MAX_COUNT):
        raise MetricsError(f'{RECEIVED}{{event="{event}"}} is {value:g}: a counter is a number of '
                           f"events, from 0 to {MAX_COUNT}")
    return value


def _start(value: float, now: float, measured_at: datetime) -> float:
    """The daemon's start time, or MetricsError: a unix time before the measurement."""
    if not (math.isfinite(value) and value >= 0):
        raise MetricsError(f"{STARTED} is {value:g}: not a time (unix seconds)")
    if value >= now:
        raise MetricsError(f"{STARTED} is {value:g}: not in the past of the measurement "
                           f"({measured_at.isoformat(timespec='seconds')})")
    return value


def _measured_at(now: float) -> datetime:
    try:
        return datetime.fromtimestamp(now, UTC)
    except (OverflowError, ValueError, OSError):
        raise MetricsError(f"measured at {now:g}: not a date") from None


def rates(text: str, now: float, source: str, *, saved: bool) -> Rates:
    """The rates in the daemon's metrics text, as of `now` (unix seconds). MetricsError
    when the text is not the daemon's, or holds a value no daemon writes."""
    measured_at = _measured_at(now)
    counts: dict[str, float] = {}
    started: float | None = None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                event = sample.labels.get("event")
                if sample.name == RECEIVED and event in EVENT_NAMES:
                    counts[event] = sample.value
                elif sample.name == STARTED:
                    started = sample.value
    except ValueError as error:
        # The parser's message may quote a whole line: a megabyte of it, or control bytes.
        raise MetricsError(f"not Prometheus text: {one_line(str(error), MAX_QUOTED)}") from None
    if started is None:
        raise MetricsError(f"no {STARTED}: not the /metrics of a mailhooks daemon")
    seconds = now - _start(started, now, measured_at)
    per_hour: dict[str, float] = {
        event: _count(event, counts.get(event, 0.0)) * 3600 / seconds for event in EVENT_NAMES
    }
    return Rates(source, measured_at, seconds, per_hour, saved)


def estimate(diff: Diff, measured: Rates) -> Estimate:
    """The deliveries per hour each destination gains and loses with the change."""
    costs: dict[str, dict[str, float]] = {}
    bounded: set[str] = set()
    unknown: dict[str, set[Unknown]] = {}
    for effect in diff.effects:
        side = "added" if effect.change in ("starts", "may start") else "removed"
        place = costs.setdefault(effect.destination, {"added": 0.0, "removed": 0.0})
        place[side] += sum(measured.per_hour[event] for event in effect.events)
        if effect.filters:
            bounded.add(effect.destination)
        if effect.filters_changed:
            # Every event of these types counted: how many the filters let through is unknown.
            bounded.add(effect.destination)
            unknown.setdefault(effect.destination, set()).add(
                "filters widened" if effect.change == "may start" else "filters narrowed")
    notes = [
        f"Rates are averages over the {measured.seconds:.0f} s since the measured daemon "
        "started, on that host only.",
        "A delivery is one event to one webhook; a batching channel sends several per request.",
    ]
    if measured.saved:
        notes.insert(0, "Measured at the saved file's modification time.")
    if bounded:
        notes.append("Filters select among the events: for the destinations marked, the "
                     "numbers are upper bounds.")
    if unknown:
        notes.append("Where a webhook's filters widened or narrowed, the counters cannot tell how "
                     "many events that lets through or holds back: the numbers count every "
                     "event of the types concerned.")
    return Estimate(
        source=measured.source, measured_at=measured.measured_at.isoformat(timespec="seconds"),
        seconds=round(measured.seconds, 3),
        rates=[Rate(event=event, per_hour=round(measured.per_hour[event], 3)) for event in EVENT_NAMES],
        destinations=[
            DestinationCost(destination=destination, added_per_hour=round(cost["added"], 3),
                            removed_per_hour=round(cost["removed"], 3),
                            upper_bound=destination in bounded,
                            unknown=[why for why in UNKNOWN if why in unknown[destination]]
                            if destination in unknown else None)
            for destination, cost in sorted(costs.items())
        ],
        notes=notes,
    )
