"""End-to-end latency at a steady 1,000 events/s: from the 202 answering an event's POST
to that event's arrival at the receiver (both on the system-wide monotonic clock; a
delivery that arrives before its own 202 was read counts as 0).

The baseline is the floor for one HTTP hop: a bare aiohttp client in its own process
POSTing to the same receiver at the same rate, send → arrival.
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import (
    Row,
    Scale,
    loadgen,
    percentile,
    receiver,
    running_daemon,
    scratch,
    web_webhook,
)
from tests.utils import wait_until

RATE = 1000


async def run(scale: Scale) -> list[Row]:
    seconds = scale.pick(8.0, 3.0)
    async with receiver(timing=True) as endpoint:
        with scratch() as root:
            hooks = {"hook": web_webhook(endpoint.url_for("hook"))}
            async with running_daemon(root, webhooks=hooks) as daemon:
                report = await loadgen(
                    "post", str(daemon.socket), "--concurrency", "32", "--rate", str(RATE),
                    "--seconds", str(seconds), "--warmup", "0", "--ids", "lat-", "--record",
                )
                acks: dict[str, float] = report.pop("acks")
                report.pop("acked")
                try:
                    await wait_until(lambda: all(key in endpoint.arrivals for key in acks), 30,
                                     "every event at the receiver", interval=0.1)
                except TimeoutError:
                    pass
        arrived = [endpoint.arrivals[key] - at for key, at in acks.items() if key in endpoint.arrivals]
        missing = len(acks) - len(arrived)
        early = sum(1 for value in arrived if value < 0)
        latencies = [max(0.0, value) for value in arrived]
        endpoint.sent_latency.clear()
        bare = await loadgen("client", endpoint.url_for("bare"), "--rate", str(RATE),
                             "--seconds", str(seconds))
        floor = list(endpoint.sent_latency)
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    b50, b99 = percentile(floor, 0.5) * 1000, percentile(floor, 0.99) * 1000
    achieved = len(acks) / seconds
    details: dict[str, Any] = {
        "events": len(acks), "achieved_rate": round(achieved), "missing": missing,
        "arrived_before_202": early, "post_to_202": {k: v for k, v in report.items()},
        "bare_p50_ms": b50, "bare_p99_ms": b99, "bare": bare,
    }
    met = p50 <= 5 and p99 <= 50 and missing == 0 and achieved >= RATE * 0.95
    return [Row(
        f"latency at {RATE:,} events/s, 202 → receiver",
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (sent {achieved:,.0f}/s)",
        f"bare hop p50 {b50:.1f} ms, p99 {b99:.1f} ms",
        f"{p50 / b50:.1f}× / {p99 / b99:.1f}×" if b50 and b99 else "—",
        "≤ 5 ms / ≤ 50 ms", met, details,
    )]
