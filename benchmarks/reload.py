"""Hot reload with 1,000 webhooks under load: file write → new config live, and events
lost.

The daemon runs 1,000 webhooks that match nothing of the load plus a `steady` one that
matches all of it, while a load generator posts 300 events/s with event_ids. Several times
a new webhook file matching the load is written; "live" is the first delivery to that new
webhook's path (so the figure includes one delivery). At the end every acknowledged event
must have reached `steady`: the difference is the events lost (and extra copies are
counted as duplicates). The baseline is the floor of a reload: `load_directory` of the
same directory in this process.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.harness import (
    Row,
    Scale,
    loadgen,
    receiver,
    running_daemon,
    scratch,
    web_webhook,
)
from mailhooks.events import EVENT_NAMES
from mailhooks.settings import Limits, Settings
from mailhooks.webhooks.load import load_directory
from tests.utils import wait_until

WEBHOOKS = 1000
RATE = 300
WAIT = 15.0


def _selection(index: int) -> list[str]:
    """Mixed selections that never include `delivered`, the load's event."""
    others = [name for name in EVENT_NAMES if name != "delivered"]
    return sorted({others[index % len(others)], others[(index * 7 + 3) % len(others)]})


async def run(scale: Scale) -> list[Row]:
    reloads = scale.pick(3, 2)
    seconds = 4.0 + reloads * 6.0
    async with receiver(track_ids=True) as endpoint:
        hooks = {
            f"team-{index % 20:02}/hook-{index:04}": web_webhook(
                endpoint.url_for(f"hook-{index}"), events=_selection(index),
                filters={"sending_node": [f"node-{index}"]})
            for index in range(WEBHOOKS)
        }
        steady = {"sending_node": ["steady"]}
        hooks["steady"] = web_webhook(endpoint.url_for("steady"), filters=steady)
        config = {"limits": {"max_webhooks": WEBHOOKS + 100}}
        with scratch() as root:
            async with running_daemon(root, config, hooks) as daemon:
                load = asyncio.create_task(loadgen(
                    "post", str(daemon.socket), "--concurrency", "16", "--rate", str(RATE),
                    "--seconds", str(seconds), "--warmup", "0", "--ids", "rl-",
                    "--fields", '{"sending_node": "steady"}',
                ))
                await asyncio.sleep(1.5)
                times = []
                for number in range(reloads):
                    path = f"/new-{number}"
                    written = time.monotonic()
                    daemon.write_webhook(f"new/{number}", web_webhook(endpoint.url_for(path[1:]),
                                                                      filters=steady))
                    try:
                        await wait_until(lambda path=path: path in endpoint.first_at, WAIT,  # type: ignore[misc]
                                         "a delivery to the new webhook", interval=0.005)
                        times.append(endpoint.first_at[path] - written)
                    except TimeoutError:
                        times.append(float("inf"))
                    await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - written)))
                report = await load
                acked = set(report.pop("acked"))
                try:
                    await wait_until(lambda: acked <= endpoint.ids.get("/steady", set()), 60,
                                     "every acked event at steady", interval=0.1)
                except TimeoutError:
                    pass
            settings = Settings(limits=Limits(max_webhooks=WEBHOOKS + 100), allow_http=True)
            started = time.perf_counter()
            load_directory(daemon.webhooks, settings)
            floor = time.perf_counter() - started
    received = endpoint.ids.get("/steady", set())
    lost = len(acked - received)
    duplicates = endpoint.by_path.get("/steady", 0) - len(received)
    worst = max(times)
    details = {"reload_s": times, "acked": len(acked), "lost": lost, "duplicates": duplicates,
               "load": report, "load_directory_s": floor}
    return [Row(
        f"reload, {WEBHOOKS:,} webhooks under {RATE} events/s",
        f"worst {worst:.2f} s of {reloads}; lost {lost} of {len(acked):,}; dup {duplicates}",
        f"load_directory {floor:.2f} s", f"{worst / floor:.1f}×",
        "≤ 1 s; 0 lost", worst <= 1.0 and lost == 0, details,
    )]
