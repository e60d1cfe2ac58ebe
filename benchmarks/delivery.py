"""Delivery: deliveries/s from the spool to a receiver answering 200, signed.

The receiver holds every request while the spool is filled (its gate is closed), then
opens the gate: from then on the daemon does nothing but deliver, and the figure is the
deliveries that reached the receiver per second. The baseline is a bare aiohttp client in
its own process POSTing a body of the same size to the same receiver, 8 at a time (a
lane's concurrency), in rounds alternating with the daemon's (`Paired`).

A second row, for sizing, delivers the same way to a webhook with `batch` (100 events per
request, one request at a time as a batching lane sends them): events/s until the spool
is drained, beside the unbatched figure of the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.harness import (
    Daemon,
    Paired,
    Row,
    Scale,
    loadgen,
    prefill,
    rate_text,
    ratio_text,
    receiver,
    running_daemon,
    scratch,
    web_webhook,
)
from tests.utils import Receiver, wait_until

GROUP = 3  # in the fan-out case every event matches this many webhooks
BATCH = 100  # events per request in the batched row
BATCHING: dict[str, float] = {"max_events": BATCH, "max_wait": 1}
BATCHED_SCALE = 4  # a batched round delivers this many times the events, to last as long


async def measure(events: int, webhooks: int = 1, rounds: int = 1,
                  between: Callable[[], Awaitable[None]] | None = None,
                  batched: bool = False) -> list[dict[str, Any]]:
    """Deliver `events` events to `webhooks` webhooks (1, or groups of 3 sharing a
    sending_node filter, each event matching one group), `rounds` times on one daemon,
    awaiting `between` after each round; `batched`: one webhook sending BATCH events
    per request. Returns each round's rates."""
    async with receiver() as endpoint:
        if batched:
            hooks = {"hook": web_webhook(endpoint.url_for("hook"), timeout=120, batch=BATCHING)}
            nodes, per_event = 0, 1
        elif webhooks == 1:
            hooks = {"hook": web_webhook(endpoint.url_for("hook"), timeout=120)}
            nodes, per_event = 0, 1
        else:
            groups = webhooks // GROUP
            hooks = {
                f"hook-{index:03}": web_webhook(
                    endpoint.url_for(f"hook-{index:03}"), timeout=120,
                    filters={"sending_node": [f"node-{index // GROUP}"]},
                )
                for index in range(webhooks)
            }
            nodes, per_event = groups, GROUP
        config = {"limits": {"max_webhooks": max(100, webhooks)}}
        figures = []
        with scratch() as root:
            async with running_daemon(root, config, hooks) as daemon:
                for _ in range(rounds):
                    figures.append(await deliver_round(daemon, endpoint, events, nodes, per_event,
                                                       batched=batched))
                    if between is not None:
                        await between()
    return figures


async def deliver_round(daemon: Daemon, endpoint: Receiver, events: int, nodes: int = 0,
                        per_event: int = 1, batched: bool = False) -> dict[str, Any]:
    """Spool `events` while the receiver holds every request, then open it: the rate at
    which deliveries reach it, the rate at which their outcomes are recorded, and the
    CPU the daemon (all of it, and its event loop's thread) spent per delivery. The
    receiver counts requests, so in batches the first rate is that of the second."""
    endpoint.gate.clear()
    endpoint.count = 0
    fill = await prefill(daemon.socket, events, nodes=nodes)
    total = events * per_event
    cpu, loop_cpu = daemon.cpu(), daemon.main_thread_cpu()
    started = time.monotonic()
    endpoint.gate.set()
    if not batched:
        await wait_until(lambda: endpoint.count >= total, 600, "the deliveries", interval=0.005)
    received = time.monotonic() - started
    await wait_until(lambda: _drained(daemon), 120, "the spool to drain", 0.05)
    recorded = time.monotonic() - started
    return {
        "deliveries": total, "per_s": total / (recorded if batched else received),
        "recorded_per_s": total / recorded, "requests": endpoint.count,
        "prefill_s": round(fill, 2),
        "daemon_cpu_percent": round((daemon.cpu() - cpu) / recorded * 100),
        "loop_us_per_delivery": round((daemon.main_thread_cpu() - loop_cpu) / total * 1e6),
    }


async def _drained(daemon: Daemon) -> bool:
    return bool(await daemon.pending() == 0)


async def bare_client(count: int) -> dict[str, Any]:
    async with receiver() as endpoint:
        report = await loadgen("client", endpoint.url_for("bare"), "--concurrency", "8",
                               "--count", str(count))
    return report


async def run(scale: Scale) -> list[Row]:
    count, rounds = scale.pick((6000, 3), (3000, 2))
    bare: list[dict[str, Any]] = []

    async def bare_round() -> None:
        bare.append(await bare_client(count))

    daemon = await measure(count, rounds=rounds, between=bare_round)
    paired = Paired([round_["per_s"] for round_ in daemon],
                    [round_["requests_per_s"] for round_ in bare])
    batched = await measure(count * BATCHED_SCALE, rounds=rounds, batched=True)
    batched_rate = statistics.median(round_["per_s"] for round_ in batched)
    return [Row(
        "delivery, 1 webhook, signed", rate_text(paired.figure, "deliveries/s"),
        f"bare aiohttp client {rate_text(paired.limit, 'req/s')}", ratio_text(paired.ratio),
        "≥ 0.70× bare", paired.ratio >= 0.70,
        {**paired.as_json(), "daemon": daemon, "bare": bare},
    ), Row(
        f"delivery, batches of {BATCH}, 1 webhook, signed", rate_text(batched_rate),
        f"unbatched {rate_text(paired.figure, 'deliveries/s')}",
        ratio_text(batched_rate / paired.figure), "— (for sizing)", None,
        {"rounds": batched},
    )]
