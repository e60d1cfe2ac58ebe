"""Memory: the daemon's RSS (VmRSS in /proc/PID/status) idle, and loaded with 10,000
webhooks and 100,000 pending deliveries.

The pending deliveries go to 10 of the webhooks, which point at a black hole (a port that
never answers, 300 s timeout): each of their lanes holds 8 requests in flight and the rest
stay pending. The baseline is the bare aiohttp server's RSS.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from benchmarks.harness import (
    Row,
    Scale,
    bare_server,
    black_hole,
    prefill,
    running_daemon,
    scratch,
    vm_rss_kib,
    web_webhook,
)

BUSY = 10  # webhooks that get the pending deliveries


def _hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def run(scale: Scale) -> list[Row]:
    webhooks = scale.pick(10000, 2000)
    pending = scale.pick(100000, 20000)
    rows = []
    with scratch() as root, black_hole() as void:
        async with bare_server(root) as (_socket, pid):
            await asyncio.sleep(0.5)
            bare = vm_rss_kib(pid) / 1024
        async with running_daemon(root / "idle") as daemon:
            await asyncio.sleep(1.0)
            idle = daemon.rss_kib() / 1024
        rows.append(Row("memory, idle", f"{idle:.0f} MB", f"bare aiohttp {bare:.0f} MB",
                        f"{idle / bare:.2f}×", "≤ 80 MB", idle <= 80, {}))

        hooks = {
            f"team-{index % 50:02}/hook-{index:05}": web_webhook(
                void, timeout=300, retry_schedule=[3600],
                filters={"sending_node": [f"node-{index}"]})
            for index in range(webhooks)
        }
        config = {"limits": {"max_webhooks": webhooks}}
        async with running_daemon(root / "loaded", config, hooks, timeout=300) as daemon:
            started_rss = daemon.rss_kib() / 1024
            fill = await prefill(daemon.socket, pending, nodes=BUSY, per_post=1000)
            await asyncio.sleep(2.0)
            queued = await daemon.pending()
            loaded = daemon.rss_kib() / 1024
            peak = _hwm_kib(daemon.pid) / 1024
    label = f"{webhooks:,} webhooks + {queued:,} pending"
    rows.append(Row(f"memory, {label}", f"{loaded:.0f} MB (peak {peak:.0f} MB)",
                    f"bare aiohttp {bare:.0f} MB", f"{loaded / bare:.2f}×", "≤ 300 MB",
                    loaded <= 300, {"after_start_mb": started_rss, "prefill_s": fill,
                                    "pending": queued, "peak_mb": peak}))
    return rows
