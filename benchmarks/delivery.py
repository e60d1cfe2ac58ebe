"""Delivery: deliveries/s from the spool to a receiver answering 200, signed.

The receiver holds every request while the spool is filled (its gate is closed), then
opens the gate: from then on the daemon does nothing but deliver, and the figure is the
deliveries that reached the receiver per second. The baseline is a bare aiohttp client in
its own process POSTing a body of the same size to the same receiver, 8 at a time (a
lane's concurrency).
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.harness import (
    Row,
    Scale,
    loadgen,
    prefill,
    rate_text,
    ratio_text,
    receiver,
    running_daemon,
    scratch,
    wait_until,
    web_webhook,
)

GROUP = 3  # in the fan-out case every event matches this many webhooks


async def measure(events: int, webhooks: int = 1) -> dict[str, Any]:
    """Deliver `events` events to `webhooks` webhooks (1, or groups of 3 sharing a
    sending_node filter, each event matching one group). Returns the rates."""
    async with receiver() as endpoint:
        if webhooks == 1:
            hooks = {"hook": web_webhook(endpoint.url("hook"), timeout=120)}
            nodes, per_event = 0, 1
        else:
            groups = webhooks // GROUP
            hooks = {
                f"hook-{index:03}": web_webhook(
                    endpoint.url(f"hook-{index:03}"), timeout=120,
                    filters={"sending_node": [f"node-{index // GROUP}"]},
                )
                for index in range(webhooks)
            }
            nodes, per_event = groups, GROUP
        total = events * per_event
        config = {"limits": {"max_webhooks": max(100, webhooks)}}
        with scratch() as root:
            async with running_daemon(root, config, hooks) as daemon:
                endpoint.gate.clear()
                fill = await prefill(daemon.socket, events, nodes=nodes)
                cpu = daemon.cpu()
                started = time.monotonic()
                endpoint.gate.set()
                await wait_until(lambda: endpoint.count >= total, 600, "the deliveries",
                                 interval=0.005)
                received = time.monotonic() - started
                await wait_until(lambda: _drained(daemon), 120, "the spool to drain", 0.1)
                recorded = time.monotonic() - started
                cpu = daemon.cpu() - cpu
    return {
        "deliveries": total, "per_s": total / received, "recorded_per_s": total / recorded,
        "prefill_s": round(fill, 2), "daemon_cpu_percent": round(cpu / recorded * 100),
    }


async def _drained(daemon: Any) -> bool:
    return bool(await daemon.pending() == 0)


async def bare_client(count: int) -> dict[str, Any]:
    async with receiver() as endpoint:
        report = await loadgen("client", endpoint.url("bare"), "--concurrency", "8",
                               "--count", str(count))
    return report


async def run(scale: Scale) -> list[Row]:
    count = scale.pick(10000, 3000)
    daemon = await measure(count)
    bare = await bare_client(count)
    ratio = daemon["per_s"] / bare["requests_per_s"]
    return [Row(
        "delivery, 1 webhook, signed", rate_text(daemon["per_s"], "deliveries/s"),
        f"bare aiohttp client {rate_text(bare['requests_per_s'], 'req/s')}", ratio_text(ratio),
        "≥ 0.70× bare", ratio >= 0.70, {"daemon": daemon, "bare": bare},
    )]
