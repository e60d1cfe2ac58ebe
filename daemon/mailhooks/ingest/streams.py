"""The sources read from stdin: PowerMTA's accounting pipe, KumoMTA's records (to test a
setup, or to replay a log), and one bounce or complaint from the MTA's pipe transport."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn

from mailhooks.ingest.feed import EVENTS, KUMOMTA, Feed, GaveUp
from mailhooks.ingest.reading import Lines, chunks_of, with_idle
from mailhooks.ingest.report import Report, put
from mailhooks.sources import dsn
from mailhooks.sources.pmta import AccountingReader
from mailhooks.sources.records import Parsed, skip

STDIN: Final = 0
IDLE_SECONDS: Final = 0.5
# Asked to stop (SIGTERM), what is read is sent for at most this long.
STOP_GRACE: Final = 10.0
# How long a command that reads a finite input waits for an unavailable daemon.
BOUNDED_PATIENCE: Final = 30.0
EX_TEMPFAIL: Final = 75  # sysexits.h: the MTA keeps the message and tries again


@dataclass
class Run:
    """What every source's run gets: the daemon's socket, a log line writer, and the
    event set when the command is asked to stop."""

    socket: Path
    log: Callable[[str], None]
    stop: asyncio.Event


def outcome(run: Run, report: Report, feed: Feed) -> int:
    """The summary line, and the exit code: 0 when every event was sent, 1 when not."""
    run.log(report.summary(feed.counts))
    return 1 if feed.counts.refused else 0


async def stdin_lines(run: Run, feed: Feed) -> AsyncGenerator[list[bytes], None]:
    """The lines of stdin, a list a chunk read, the last without its line end. When the
    command is asked to stop, it ends early, `feed` told to send what it holds quickly."""
    lines = Lines()
    async with contextlib.aclosing(with_idle(chunks_of(STDIN), IDLE_SECONDS)) as chunks:
        async for chunk in chunks:
            if run.stop.is_set():
                feed.hurry(STOP_GRACE)
                return
            if chunk:
                dropped = lines.dropped
                yield lines.feed(chunk)
                if lines.dropped != dropped:
                    run.log(f"a line longer than {lines.max_line} bytes was dropped "
                            f"({lines.dropped} so far): no record is that long")
    tail = lines.rest()
    if tail:
        yield [tail]


async def pmta(run: Run) -> int:
    """`<acct-file |mailhooks ingest pmta>`: read until the pipe closes, waiting out any
    outage of the daemon, so that no line is lost."""
    report, reader = Report(run.log), AccountingReader()
    feed = Feed(run.socket, EVENTS, log=run.log, patience=None)
    try:
        async with feed, contextlib.aclosing(stdin_lines(run, feed)) as chunks:
            async for lines in chunks:
                for raw in lines:
                    report.records += 1
                    await put(feed, reader.feed_line(raw.decode("utf-8", "replace")), report)
            if not run.stop.is_set():
                await put(feed, reader.finish(), report)
    except GaveUp as error:
        run.log(f"stopped with events not sent: {error}")
        return 1
    return outcome(run, report, feed)


async def kumomta(run: Run) -> int:
    """KumoMTA's records on stdin, one JSON object a line (its log files, decompressed),
    or one JSON document (an object or an array), posted to `/sources/kumomta` as its
    log hook would."""
    report = Report(run.log, unit="record(s)", sent="record(s)")
    whole: bytearray | None = None
    seen_any = False
    feed = Feed(run.socket, KUMOMTA, log=run.log, patience=BOUNDED_PATIENCE)
    try:
        async with feed, contextlib.aclosing(stdin_lines(run, feed)) as chunks:
            async for lines in chunks:
                for raw in lines:
                    if whole is not None:
                        whole += raw + b"\n"
                        continue
                    records = _records(raw)
                    if records is None and not seen_any and raw.lstrip()[:1] in (b"{", b"["):
                        whole = bytearray(raw + b"\n")  # one document over several lines
                        continue
                    seen_any = seen_any or bool(raw.strip())
                    await _put_records(feed, records, raw, report)
            if whole is not None and not run.stop.is_set():
                await _put_records(feed, _records(bytes(whole)), bytes(whole), report)
    except GaveUp as error:
        run.log(f"records not sent: {error}")
        return 1
    return outcome(run, report, feed)


def _records(raw: bytes) -> list[bytes] | None:
    """The records of one line: an object, or an array of them, each as JSON; None when
    the line is no JSON."""
    text = raw.strip()
    if not text:
        return []
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, dict):
        return [text]
    if isinstance(value, list):
        return [json.dumps(item).encode() if isinstance(item, dict) else b"" for item in value]
    return [b""]


async def _put_records(feed: Feed, records: list[bytes] | None, raw: bytes, report: Report) -> None:
    if records is None:
        report.records += 1
        report.skip(skip("malformed", f"a line that is no JSON: {raw[:80]!r}").skipped)
        return
    good = [record for record in records if record]
    report.records += len(records)
    report.events += len(good)
    if len(good) < len(records):
        report.skip(skip("malformed", "a JSON value that is no log record (an object)").skipped
                    * (len(records) - len(good)))
    if good:
        await feed.put(good)


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


async def dsn_message(run: Run) -> int:
    """One message from the MTA's pipe transport: 0 when it is handled (its events
    accepted, or it gives none: logged, never bounced back, so no loop can start), 75
    (EX_TEMPFAIL: the MTA keeps the message and tries again) when the daemon cannot take
    it now, 1 when the daemon refuses it for good."""
    report = Report(run.log, unit="message(s)")
    raw = await asyncio.to_thread(sys.stdin.buffer.read, dsn.MAX_MESSAGE_BYTES + 1)
    parsed: Parsed = dsn.parse_message(raw)
    report.records = 1
    feed = Feed(run.socket, EVENTS, log=run.log, patience=0, max_wait=0)
    try:
        async with feed:
            await put(feed, parsed, report)
    except GaveUp as error:
        run.log(f"the daemon cannot take it now ({error}); exit 75, for the MTA to try again")
        return EX_TEMPFAIL
    if not report.events:
        run.log("the message gives no event; nothing sent")
    return outcome(run, report, feed)
