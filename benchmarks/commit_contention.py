"""How long one spool commit of 64 events takes alone, and beside a Python thread that
keeps the GIL busy (as the event loop does under load). Not part of the suite.

Python's sqlite3 releases the GIL around every statement step; a thread that wants it
back while another one computes can wait a whole switch interval (5 ms), so the number
of statements per commit, not their work, sets the second figure.

    .venv/bin/python -m benchmarks.commit_contention
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from mailhooks.spool import NewEvent, Spool
from mailhooks.spool.records import Intake as _Intake

EVENTS_PER_COMMIT = 64
PAYLOAD = b'{"event":"delivered","email":"someone@example.com","message_id":"m-1"}' + b" " * 230


def commit_ms(spool: Spool, commits: int) -> float:
    """Median milliseconds of `commits` commits of EVENTS_PER_COMMIT one-event requests,
    each reading back its deliveries for the lanes."""
    times = []
    for _ in range(commits):
        batch = [(_Intake([NewEvent(os.urandom(16).hex(), "delivered", "m-1", PAYLOAD, ("hook",))],
                          time.time(), hand_over=True), None) for _ in range(EVENTS_PER_COMMIT)]
        started = time.perf_counter()
        spool._writer._commit(batch)  # type: ignore[arg-type]  # no futures: called directly
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        spool = await Spool.open(Path(directory) / "spool.db", max_bytes=1 << 30, retention=3600)
        try:
            alone = commit_ms(spool, 200)
            stop = threading.Event()

            def busy() -> None:
                while not stop.is_set():
                    sum(range(1000))

            thread = threading.Thread(target=busy)
            thread.start()
            try:
                contended = commit_ms(spool, 30)
            finally:
                stop.set()
                thread.join()
        finally:
            await spool.close()
    print(f"commit of {EVENTS_PER_COMMIT} events: {alone:.1f} ms alone, "
          f"{contended:.1f} ms beside a busy Python thread")


if __name__ == "__main__":
    asyncio.run(main())
