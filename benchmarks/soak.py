"""Soak: a steady rate to one healthy receiver for minutes, sampling the daemon's RSS and
the spool's size (spool.db + spool.db-wal) every second.

    .venv/bin/python -m benchmarks.soak [--minutes 10] [--rate 500]
    .venv/bin/python -m benchmarks --soak [--minutes 10] [--rate 500]

Prints min/max/last of each, and whether either grows without bound: the mean of the last
minute against the first (a quarter of the run each when it is shorter than 4 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import loadgen, receiver, running_daemon, scratch, web_webhook

GROWTH = 1.25  # last window's mean over the first's beyond which a figure "grows"


def _spool_bytes(state: Path) -> int:
    total = 0
    for name in ("spool.db", "spool.db-wal"):
        try:
            total += (state / name).stat().st_size
        except FileNotFoundError:
            pass
    return total


def _verdict(name: str, unit: str, scale: float, samples: list[float], window: int) -> str:
    first = samples[:window]
    last = samples[-window:]
    mean_first = sum(first) / len(first)
    mean_last = sum(last) / len(last)
    growing = mean_last > mean_first * GROWTH and last[-1] >= max(last[: len(last) // 2] or last)
    return (
        f"{name}: min {min(samples) / scale:,.1f} {unit}, max {max(samples) / scale:,.1f} {unit}, "
        f"last {samples[-1] / scale:,.1f} {unit}; first window mean {mean_first / scale:,.1f}, "
        f"last window mean {mean_last / scale:,.1f} → "
        f"{'GROWS (check for a leak)' if growing else 'bounded'}"
    )


async def soak(minutes: float, rate: float, retention: float = 60) -> dict[str, Any]:
    seconds = minutes * 60
    rss: list[float] = []
    spool: list[float] = []
    async with receiver() as endpoint:
        with scratch() as root:
            hooks = {"hook": web_webhook(endpoint.url_for("hook"))}
            # A short retention, so the bound on the spool (delivered rows pruned every
            # minute) shows within the run.
            config = {"spool": {"retention": retention}}
            async with running_daemon(root, config, hooks) as daemon:
                load = asyncio.create_task(loadgen(
                    "post", str(daemon.socket), "--concurrency", "16", "--rate", str(rate),
                    "--seconds", str(seconds), "--warmup", "0", timeout=seconds + 120,
                ))
                started = time.monotonic()
                while not load.done():
                    rss.append(daemon.rss_kib() * 1024)
                    spool.append(_spool_bytes(daemon.state))
                    elapsed = time.monotonic() - started
                    if len(rss) % 30 == 0:
                        print(f"  {elapsed:5.0f} s  rss {rss[-1] / 2**20:6.1f} MB  spool "
                              f"{spool[-1] / 2**20:7.1f} MB  delivered {endpoint.count:,}",
                              file=sys.stderr, flush=True)
                    await asyncio.sleep(max(0.0, len(rss) - elapsed))
                report = await load
                pending = await daemon.pending()
    window = max(1, min(60, len(rss) // 4))
    return {"report": report, "rss": rss, "spool": spool, "window": window,
            "delivered": endpoint.count, "pending_at_end": pending}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0, help="events per second")
    parser.add_argument("--retention", type=float, default=60.0,
                        help="spool.retention in seconds (delivered rows are pruned after it)")
    options = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(soak(options.minutes, options.rate, options.retention))
    else:
        result = uvloop.run(soak(options.minutes, options.rate, options.retention))
    report = result["report"]
    accepted = sum(report["statuses"].get(code, 0) for code in ("202",))
    print(f"soak: {options.minutes:g} min at {options.rate:g} events/s asked, "
          f"{report['events_per_s']:,.0f}/s answered 202 ({accepted:,} events, statuses "
          f"{report['statuses']}), {result['delivered']:,} delivered, "
          f"{result['pending_at_end']:,} pending at the end")
    print(f"  POST → 202 p50 {report.get('ack_p50_ms', 0):.1f} ms, p99 {report.get('ack_p99_ms', 0):.1f} ms")
    print("  " + _verdict("daemon RSS", "MB", 2**20, result["rss"], result["window"]))
    print("  " + _verdict("spool size", "MB", 2**20, result["spool"], result["window"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
