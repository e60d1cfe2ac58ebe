"""A/B: the daemon of another checkout against this one, in alternating rounds.

    git worktree add /tmp/before HEAD~1
    .venv/bin/python -m benchmarks.ab /tmp/before --what delivery --rounds 4

On a machine whose speed moves by half within minutes, a change is measured by running
both daemons side by side and alternating short rounds: each round's B/A ratio compares
two runs seconds apart. Also printed: the CPU the daemon's main thread spent per event
or delivery (from /proc), which shows where a change saved work even when the rate is
bound elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

from benchmarks.delivery import BATCHED_SCALE, BATCHING, deliver_round
from benchmarks.harness import Daemon, black_hole, loadgen, receiver, scratch, web_webhook
from tests.utils import Receiver

DELIVERIES = 6000
SECONDS = 3.0


async def _intake_round(daemon: Daemon) -> tuple[float, float]:
    cpu = daemon.main_thread_cpu()
    report = await loadgen("post", str(daemon.socket), "--concurrency", "64",
                           "--seconds", str(SECONDS), "--per-post", "1")
    events = report["events_per_s"] * SECONDS
    return report["events_per_s"], (daemon.main_thread_cpu() - cpu) / events * 1e6


async def _delivery_round(daemon: Daemon, endpoint: Receiver,
                          batched: bool) -> tuple[float, float]:
    figure = await deliver_round(daemon, endpoint,
                                 DELIVERIES * (BATCHED_SCALE if batched else 1), batched=batched)
    return figure["per_s"], figure["loop_us_per_delivery"]


async def compare(baseline: Path, what: str, rounds: int) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    async with receiver() as endpoint:
        with scratch() as root, black_hole() as void:
            daemons = {
                "A": Daemon(root / "a", env={"PYTHONPATH": str(baseline / "daemon")}),
                "B": Daemon(root / "b"),
            }
            try:
                # Started inside the try: a daemon that started is stopped even when the
                # other one fails to start.
                for name, daemon in daemons.items():
                    url = void if what == "intake" else endpoint.url_for(name)
                    daemon.write_config()
                    daemon.write_webhook("hook", web_webhook(
                        url, timeout=300, retry_schedule=[3600],
                        batch=BATCHING if what == "batched" else None,
                    ))
                    await daemon.start()
                for _ in range(rounds):
                    for name, daemon in daemons.items():
                        results[name].append(await (
                            _intake_round(daemon) if what == "intake"
                            else _delivery_round(daemon, endpoint, what == "batched")
                        ))
            finally:
                for daemon in daemons.values():
                    await daemon.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", type=Path, help="a checkout of mailhooks (A); B is this one")
    parser.add_argument("--what", choices=("intake", "delivery", "batched"), default="delivery",
                        help="batched: deliveries to a webhook with batch (100 per request)")
    parser.add_argument("--rounds", type=int, default=4)
    options = parser.parse_args()
    if not (options.baseline / "daemon" / "mailhooks").is_dir():
        parser.error(f"{options.baseline} has no daemon/mailhooks")
    results = asyncio.run(compare(options.baseline.resolve(), options.what, options.rounds))
    unit, one = ("events", "event") if options.what == "intake" else ("deliveries", "delivery")
    for name, rounds in results.items():
        rates = [rate for rate, _ in rounds]
        print(f"{name}: median {statistics.median(rates):,.0f} {unit}/s, main thread "
              f"{statistics.median(cpu for _, cpu in rounds):,.0f} µs per {one}"
              f" (rounds: {', '.join(f'{rate:,.0f}' for rate in rates)})")
    ratios = [b[0] / a[0] for a, b in zip(results["A"], results["B"], strict=True)]
    print(f"B/A: median {statistics.median(ratios):.2f} "
          f"(rounds: {', '.join(f'{ratio:.2f}' for ratio in ratios)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
