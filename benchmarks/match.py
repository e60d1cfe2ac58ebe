"""Matching: µs per event for `Matcher.match` against 1k, 10k and 100k webhooks.

Realistic webhooks, built without validation (model_construct, as in config_bench):
groups of three share a primary event and distinct filter values; selections are mixed
(one event, two, three, or `all`); most filter on sending_domain, the rest on sending_node
(some also on bridge). An event made for a group matches exactly that group's three.
"Flat" means the 100k figure is at most twice the 1k figure.
"""

from __future__ import annotations

import random
import time
from typing import Any

from benchmarks.harness import Row, Scale, ratio_text
from mailhooks.channels.web import WebChannel
from mailhooks.events import EVENT_NAMES, Event
from mailhooks.match import Matcher
from mailhooks.webhooks.models import Filters, Webhook

GROUP = 3
SAMPLES = 1000
PASSES = 7
GOAL_US = 20.0


def webhook(index: int, chance: random.Random) -> Webhook:
    group = index // GROUP
    primary = EVENT_NAMES[group % len(EVENT_NAMES)]
    others = [name for name in EVENT_NAMES if name != primary]
    events: Any
    kind = index % GROUP
    if kind == 0:
        events = [primary]
    elif kind == 1:
        events = [primary, *chance.sample(others, 1)]
    else:
        events = "all" if group % 5 == 0 else [primary, *chance.sample(others, 2)]
    flavour = group % 10
    filters: dict[str, Any]
    if flavour < 6:
        filters = {"sending_domain": [f"mail{group}.example.com"]}
    elif flavour < 9:
        filters = {"sending_node": [f"node-{group}"]}
    else:
        filters = {"sending_node": [f"node-{group}"], "bridge": [f"bridge-{group}"]}
    channel = WebChannel.model_construct(type="web", url=f"https://hooks{group}.example.com/{index}")
    return Webhook.model_construct(name=f"Webhook {index}", events=events, channel=channel,
                                   filters=Filters.model_construct(**filters), status="active")


def event_for(group: int) -> Event:
    return Event.model_validate({
        "event": EVENT_NAMES[group % len(EVENT_NAMES)], "email": "someone@example.com",
        "message_id": f"m-{group}", "sending_domain": f"mail{group}.example.com",
        "sending_node": f"node-{group}", "bridge": f"bridge-{group}",
    })


def build(size: int) -> tuple[Matcher, list[Event], float]:
    """A matcher of `size` webhooks, events that each match one group, and build seconds."""
    chance = random.Random(size)
    started = time.perf_counter()
    matcher = Matcher({f"team-{index % 50:02}/hook-{index:06}": webhook(index, chance)
                       for index in range(size)})
    built = time.perf_counter() - started
    groups = size // GROUP
    return matcher, [event_for(chance.randrange(groups)) for _ in range(SAMPLES)], built


def measure(sizes: tuple[int, ...]) -> dict[int, dict[str, float]]:
    """µs per event at each size: the best of PASSES passes, the sizes taking turns, so
    a moment when the machine is slow costs every size one pass, not one size all."""
    built = {size: build(size) for size in sizes}
    best = dict.fromkeys(sizes, float("inf"))
    counts: dict[int, list[int]] = {}
    for _ in range(PASSES):
        for size, (matcher, events, _) in built.items():
            counts[size] = [len(matcher.match(item)) for item in events]  # warm: caches
            started = time.perf_counter()
            for item in events:
                matcher.match(item)
            best[size] = min(best[size], (time.perf_counter() - started) / len(events))
    return {size: {"us": best[size] * 1e6, "matches": sum(counts[size]) / len(counts[size]),
                   "build_s": built[size][2]} for size in sizes}


async def run(scale: Scale) -> list[Row]:
    sizes = scale.pick((1000, 10000, 100000), (1000, 10000))
    figures = measure(sizes)
    base = figures[sizes[0]]["us"]
    rows = []
    for size, figure in figures.items():
        ratio = figure["us"] / base
        rows.append(Row(
            f"match, {size:,} webhooks", f"{figure['us']:,.1f} µs/event "
            f"({figure['matches']:.1f} matches)", f"1,000 webhooks {base:,.1f} µs",
            ratio_text(ratio), f"≤ {GOAL_US:g} µs, ≤ 2× the 1k figure",
            figure["us"] <= GOAL_US and ratio <= 2.0, figure,
        ))
    return rows
