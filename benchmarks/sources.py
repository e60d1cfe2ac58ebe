"""Sources: records/s from each mail server's format into a running daemon.

- KumoMTA: `POST /sources/kumomta`, arrays of 100 Delivery records (about 1 KB each),
  16 keep-alive clients, against NDJSON intake (100 events/POST, 16 clients) of the very
  events the route makes of the same records (`loadgen --kumomta-events`), in alternating
  rounds on the same daemon. The goal: within 0.8× of NDJSON.

  Both sides spool the same events, of the same size (about 700 bytes) and with the same
  ids (`kumomta:` and 128 bits of a hash), so the ratio measures what the route adds:
  decoding the records, mapping them, validating the events from Python objects rather
  than from JSON. The spool's cost grows with an event's size and, much more, with ids in
  no order (each insert lands on a page of its own of the `event_id` index): the earlier
  baseline, the intake benchmark's 300-byte events numbered in order, counted against the
  route a spooling cost that NDJSON of the same events pays as well. The spool also slows
  as it fills, fast at first (its index outgrows the caches): a round of each side into
  the new spool is not counted, and the side that goes first alternates from round to
  round.
- PowerMTA, Postfix: `mailhooks ingest pmta` fed an accounting file on stdin, and
  `mailhooks ingest postfix --file` a log of delivered messages (four lines each), as
  processes of their own, on a daemon of their own: lines/s from the start of the process
  to its exit, all events accepted (so the interpreter's start is in the figure), the
  median of the rounds.
- DSN: `mailhooks ingest dsn` once per message, as the MTA's pipe transport runs it:
  messages/s, one after the other, beside the floor of starting `mailhooks --version`.

The daemon has one webhook matching every event, pointing at a black hole (as in the
intake benchmark), so delivery does not compete with intake for the CPU.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    Daemon,
    Paired,
    Row,
    Scale,
    black_hole,
    rate_text,
    ratio_text,
    running_daemon,
    scratch,
    web_webhook,
)
from benchmarks.intake import post_load

REPO = Path(__file__).resolve().parents[1]
DSN = REPO / "tests" / "sources" / "fixtures" / "dsn" / "positive" / "postfix-3.7-user-unknown.eml"
PMTA_HEADER = (b"type,timeLogged,orig,rcpt,dsnStatus,dsnDiag,bounceCat,dlvSourceIp,vmta,jobId,"
               b"header_Message-Id\n")


async def _ingest(daemon: Daemon, *args: str, stdin: bytes = b"") -> float:
    """Seconds `mailhooks ingest ARGS` takes from its start to its exit (which must be 0)."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mailhooks", "ingest", *args, "--socket", str(daemon.socket),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    _, err = await asyncio.wait_for(process.communicate(stdin), 600)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"ingest {' '.join(args)} exited {process.returncode}: {err.decode()[-2000:]}")
    return elapsed


async def _start_floor(count: int) -> float:
    """Seconds `mailhooks --version` takes to start and exit: the floor of one process."""
    started = time.perf_counter()
    for _ in range(count):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mailhooks", "--version", stdout=asyncio.subprocess.DEVNULL, cwd=REPO)
        await process.wait()
    return (time.perf_counter() - started) / count


def pmta_file(count: int, prefix: str) -> bytes:
    return PMTA_HEADER + b"".join(
        b"d,2024-06-03 18:00:00+0200,news@mail.example.com,%s%d@example.org,2.0.0 (success),"
        b"smtp;250 2.0.0 OK,,192.0.2.10,vmta1,spring,<%s%d@mail.example.com>\n"
        % (prefix.encode(), number, prefix.encode(), number) for number in range(count))


def postfix_log(messages: int, prefix: str) -> bytes:
    lines = []
    for number in range(messages):
        queue_id = f"{prefix}{number:08X}"
        at = f"2024-06-03T10:{number // 60 % 60:02d}:{number % 60:02d}+00:00 mx1"
        lines += [
            f"{at} postfix/cleanup[100]: {queue_id}: message-id=<{queue_id}@example.net>",
            f"{at} postfix/qmgr[101]: {queue_id}: from=<news@example.net>, size=1000, nrcpt=1 (queue active)",
            f"{at} postfix/smtp[102]: {queue_id}: to=<r{number}@example.org>, relay=mx.example.org"
            "[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
            f"{at} postfix/qmgr[101]: {queue_id}: removed",
        ]
    return ("\n".join(lines) + "\n").encode()


async def run(scale: Scale) -> list[Row]:
    rounds, seconds = scale.pick((3, 4.0), (2, 2.0))
    pmta_lines, postfix_messages, dsn_runs = scale.pick((50_000, 12_500, 20), (10_000, 2_500, 5))
    rows: list[Row] = []
    with scratch() as root, black_hole() as void:
        hook = web_webhook(void, timeout=300, retry_schedule=[3600])
        async with running_daemon(root / "d1", webhooks={"void": hook}) as daemon:
            reports: dict[str, list[dict[str, Any]]] = {"kumomta": [], "ndjson": []}
            sides = {"ndjson": ("--kumomta-events", "nd"), "kumomta": ("--kumomta", "k")}
            # The spool slows as it grows, fast at first: a round of each into it while it is
            # new is not counted, and the side that goes first alternates from round to round.
            for option, prefix in sides.values():
                await post_load(daemon.socket, seconds, 16, 100, daemon.pid, option, "--ids", f"w{prefix}-")
            for number in range(rounds):
                for side in ("ndjson", "kumomta") if number % 2 == 0 else ("kumomta", "ndjson"):
                    option, prefix = sides[side]
                    reports[side].append(await post_load(daemon.socket, seconds, 16, 100, daemon.pid,
                                                         option, "--ids", f"{prefix}{number}-"))
            kumomta = Paired([r["events_per_s"] for r in reports["kumomta"]],
                             [r["events_per_s"] for r in reports["ndjson"]])
            rows.append(Row(
                "sources: KumoMTA route, 100 records/POST", rate_text(kumomta.figure, "records/s"),
                f"NDJSON of its events {rate_text(kumomta.limit)}", ratio_text(kumomta.ratio),
                "≥ 0.80× NDJSON", kumomta.ratio >= 0.8, {**kumomta.as_json(), **reports},
            ))
            ndjson = kumomta.limit

        # A daemon of their own: the one above holds the routes' rounds, pending.
        async with running_daemon(root / "d2", webhooks={"void": hook}) as daemon:
            pmta_seconds = [await _ingest(daemon, "pmta", stdin=pmta_file(pmta_lines, f"p{number}-"))
                            for number in range(rounds)]
            elapsed = statistics.median(pmta_seconds)
            rows.append(Row(
                f"sources: ingest pmta, {pmta_lines:,} lines on stdin",
                rate_text(pmta_lines / elapsed, "lines/s"),
                f"NDJSON (KumoMTA's events) {rate_text(ndjson)}", ratio_text(pmta_lines / elapsed / ndjson),
                "—", None,
                {"lines": pmta_lines, "seconds_rounds": [round(x, 2) for x in pmta_seconds]},
            ))

            postfix_seconds = []
            for number in range(rounds):
                log = root / f"mail{number}.log"
                log.write_bytes(postfix_log(postfix_messages, f"B{number}"))
                postfix_seconds.append(await _ingest(daemon, "postfix", "--file", str(log),
                                                     "--state-dir", str(root / "st")))
            elapsed = statistics.median(postfix_seconds)
            lines = postfix_messages * 4
            rows.append(Row(
                f"sources: ingest postfix --file, {lines:,} lines",
                f"{rate_text(lines / elapsed, 'lines/s')} ({rate_text(postfix_messages / elapsed)})",
                f"NDJSON (KumoMTA's events) {rate_text(ndjson)}",
                ratio_text(postfix_messages / elapsed / ndjson), "—", None,
                {"lines": lines, "events": postfix_messages,
                 "seconds_rounds": [round(x, 2) for x in postfix_seconds]},
            ))

            message = DSN.read_bytes()
            started = time.perf_counter()
            for _ in range(dsn_runs):
                await _ingest(daemon, "dsn", stdin=message)
            per_message = (time.perf_counter() - started) / dsn_runs
            floor = await _start_floor(dsn_runs)
            rows.append(Row(
                "sources: ingest dsn, one process a message", f"{per_message:.2f} s a message",
                f"mailhooks --version {floor:.2f} s", ratio_text(per_message / floor),
                "—", None, {"runs": dsn_runs, "seconds_each": round(per_message, 3),
                            "start_floor_seconds": round(floor, 3)},
            ))
    return rows
