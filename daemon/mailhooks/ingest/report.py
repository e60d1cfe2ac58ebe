"""What one run of `mailhooks ingest` did: the records it read, the events it made, and
the records it skipped, by kind; each kind is said once (its first record's detail),
then only counted, so a log full of one kind of line cannot flood the journal."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mailhooks.ingest.feed import Counts, Feed
from mailhooks.sources.records import Parsed, Skipped, checked


@dataclass
class Report:
    """`records` counts what was read (`unit`: lines, records, messages), `events` what
    was sent (`sent`: events, or KumoMTA's records, which the daemon turns into events)."""

    log: Callable[[str], None]
    unit: str = "line(s)"
    sent: str = "event(s)"
    records: int = 0
    events: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def skip(self, items: Sequence[Skipped]) -> None:
        for item in items:
            if item.kind not in self.skipped:
                self.log(f"skipped a record ({item.kind}): {item.detail}; "
                         "more of this kind are counted, not shown")
            self.skipped[item.kind] += 1

    def summary(self, counts: Counts) -> str:
        text = (f"read {self.records} {self.unit}: {self.events} {self.sent} sent, "
                f"{counts.accepted} event(s) accepted")
        if counts.duplicates:
            text += f" ({counts.duplicates} already known)"
        if counts.refused:
            text += f", {counts.refused} refused"
        if self.skipped:
            kinds = ", ".join(f"{kind} {count}" for kind, count in self.skipped.most_common())
            text += f"; skipped {sum(self.skipped.values())} ({kinds})"
        return text


def encoded(parsed: Parsed, report: Report) -> list[bytes]:
    """The events of `parsed` that SPEC §4 takes, as JSON; the rest, and what the source
    skipped, go to the report."""
    items: list[bytes] = []
    refused: list[Skipped] = []
    for event in parsed.events:
        outcome = checked(event)
        if isinstance(outcome, Skipped):
            refused.append(outcome)
        else:
            items.append(json.dumps(outcome, separators=(",", ":")).encode())
    report.events += len(items)
    report.skip(parsed.skipped)
    report.skip(refused)
    return items


async def put(feed: Feed, parsed: Parsed, report: Report) -> None:
    """`parsed`'s events to the daemon, its skipped records to the report."""
    items = encoded(parsed, report)
    if items:
        await feed.put(items)
