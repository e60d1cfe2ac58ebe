"""Soak: a steady rate to one healthy receiver for minutes, sampling the daemon's RSS and
the spool's size (spool.db + spool.db-wal) every second.

    .venv/bin/python -m benchmarks.soak [--minutes 10] [--rate 500] [--dead]
    .venv/bin/python -m benchmarks --soak [--minutes 10] [--rate 500]

Prints min/max/last of each, and whether either grows without bound: the mean of the last
minute against the first (a quarter of the run each when it is shorter than 4 minutes);
for the spool from retention + one prune on, since it fills until then by design, and
against spool.max_bytes.
With --dead, a second webhook takes every event too and its endpoint refuses every
connection for the whole run: the spool must stay within its bound (the dead webhook's
share) and the live webhook's time from intake to delivery must not move.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import loadgen, receiver, running_daemon, scratch, web_webhook
from mailhooks.app import prune_interval

GROWTH = 1.25  # last window's mean over the first's beyond which a figure "grows"


def _spool_bytes(state: Path) -> int:
    total = 0
    for name in ("spool.db", "spool.db-wal"):
        try:
            total += (state / name).stat().st_size
        except FileNotFoundError:
            pass
    return total


def _verdict(name: str, unit: str, scale: float, samples: list[float], *, settle: int = 0,
             cap: float | None = None) -> str:
    """min/max/last, and whether the figure grows: the mean of the last window against
    the first, once `settle` samples (the spool filling up to its retention) are past;
    with `cap`, whether it stayed within it."""
    shown = (f"{name}: min {min(samples) / scale:,.1f} {unit}, max {max(samples) / scale:,.1f} {unit}, "
             f"last {samples[-1] / scale:,.1f} {unit}")
    if cap is not None:
        within = "within" if max(samples) <= cap else "OVER"
        shown += f" ({within} its cap of {cap / scale:,.1f} {unit})"
    steady = samples[settle:]
    if len(steady) < 8:
        return f"{shown} → growth not judged: the run ends before {settle} s, its time to fill"
    window = max(1, min(60, len(steady) // 4))
    first, last = steady[:window], steady[-window:]
    mean_first = sum(first) / len(first)
    mean_last = sum(last) / len(last)
    growing = mean_last > mean_first * GROWTH and last[-1] >= max(last[: len(last) // 2] or last)
    return (
        f"{shown}; from {settle} s on, first window mean {mean_first / scale:,.1f}, "
        f"last window mean {mean_last / scale:,.1f} → "
        f"{'GROWS (check for a leak)' if growing else 'bounded'}"
    )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _latency(metrics: str) -> tuple[float, float]:
    """p50 and p99 of mailhooks_event_to_delivery_seconds (successful deliveries only),
    as the upper bound of the histogram bucket each falls in."""
    buckets: list[tuple[float, float]] = []
    for line in metrics.splitlines():
        if line.startswith("mailhooks_event_to_delivery_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0.0

    def quantile(fraction: float) -> float:
        return next((bound for bound, count in buckets if count >= fraction * total), float("nan"))

    return quantile(0.5), quantile(0.99)


async def soak(minutes: float, rate: float, retention: float = 60, dead: bool = False,
               max_bytes: int = 64 * 2**20) -> dict[str, Any]:
    seconds = minutes * 60
    rss: list[float] = []
    spool: list[float] = []
    async with receiver() as endpoint:
        with scratch() as root:
            hooks = {"hook": web_webhook(endpoint.url_for("hook"))}
            if dead:
                hooks["dead"] = web_webhook(f"http://127.0.0.1:{_closed_port()}/hook",
                                            retry_schedule=[5, 30, 60, 300])
            # A short retention, so the bound on the spool (delivered rows pruned every
            # minute) shows within the run.
            config = {"spool": {"retention": retention, "max_bytes": max_bytes}}
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
                _, metrics = await daemon.request("GET", "/metrics")
    return {"report": report, "rss": rss, "spool": spool, "retention": retention,
            "delivered": endpoint.count, "pending_at_end": pending,
            "latency": _latency(metrics), "dead": dead, "max_bytes": max_bytes}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0, help="events per second")
    parser.add_argument("--retention", type=float, default=60.0,
                        help="spool.retention in seconds (delivered rows are pruned after it)")
    parser.add_argument("--dead", action="store_true",
                        help="a second webhook takes every event; its endpoint is dead throughout")
    parser.add_argument("--max-bytes", type=int, default=64 * 2**20, help="spool.max_bytes")
    options = parser.parse_args(argv)
    run = soak(options.minutes, options.rate, options.retention, options.dead, options.max_bytes)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run)
    else:
        result = uvloop.run(run)
    report = result["report"]
    accepted = sum(report["statuses"].get(code, 0) for code in ("202",))
    print(f"soak: {options.minutes:g} min at {options.rate:g} events/s asked, "
          f"{report['events_per_s']:,.0f}/s answered 202 ({accepted:,} events, statuses "
          f"{report['statuses']}), {result['delivered']:,} delivered, "
          f"{result['pending_at_end']:,} pending at the end")
    print(f"  POST → 202 p50 {report.get('ack_p50_ms', 0):.1f} ms, p99 {report.get('ack_p99_ms', 0):.1f} ms")
    p50, p99 = result["latency"]
    print(f"  intake → delivered (the live webhook): p50 ≤ {p50 * 1000:g} ms, p99 ≤ {p99 * 1000:g} ms "
          "(histogram bucket bounds)")
    if result["dead"]:
        print(f"  with a dead webhook taking every event, spool.max_bytes {result['max_bytes'] / 2**20:g} MB")
    print("  " + _verdict("daemon RSS", "MB", 2**20, result["rss"]))
    # Delivered rows stay for the retention and are pruned every prune interval: the spool
    # grows until then by design, so its growth is judged from there on (1 sample a second).
    retention = result["retention"]
    settle = int(retention + prune_interval(retention))
    print("  " + _verdict("spool size", "MB", 2**20, result["spool"], settle=settle, cap=result["max_bytes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
