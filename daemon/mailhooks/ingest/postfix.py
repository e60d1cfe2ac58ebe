"""`mailhooks ingest postfix`: Postfix's log, from the journal or a file, joined into
events and sent, with a checkpoint in the state directory: the cursor (the journal's, or
the file's inode and offset) and the joiner's memory, saved only once the daemon has
accepted every event before it. A restart resumes there; what it reads again gives the
same event ids, which the daemon takes once."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mailhooks.ingest.checkpoint import CheckpointError, Checkpoints
from mailhooks.ingest.feed import EVENTS, Feed, GaveUp
from mailhooks.ingest.follow import FileFollower, FilePosition
from mailhooks.ingest.journal import JournalFollower
from mailhooks.ingest.reading import with_idle
from mailhooks.ingest.report import Report, put
from mailhooks.ingest.streams import BOUNDED_PATIENCE, IDLE_SECONDS, STOP_GRACE, Run, outcome
from mailhooks.sources.postfix import Joiner, LogLine, parse_journal_entry, parse_syslog_line

# Lines read, and the cursor after them: the file's position, or the journal's cursor.
Chunk = tuple[list[LogLine | None], FilePosition | str]

CHECKPOINT_VERSION: Final = 1
# While lines flow, a checkpoint at most this often (the joiner's memory is saved whole).
CHECKPOINT_SECONDS: Final = 1.0


@dataclass(frozen=True)
class Options:
    file: Path | None  # None: the journal
    follow: bool
    state_dir: Path
    at_end: bool  # the first run starts at the end (of the journal), not the start
    unit: str | None
    year: int | None


def checkpoint_name(options: Options) -> str:
    if options.file is None:
        return "postfix-journal.json"
    digest = hashlib.sha256(str(options.file.absolute()).encode()).hexdigest()[:12]
    return f"postfix-file-{digest}.json"


async def postfix(run: Run, options: Options) -> int:
    store = Checkpoints(options.state_dir, checkpoint_name(options))
    saved, warning = store.load()
    if warning:
        run.log(warning)
    joiner, cursor = _restored(run, saved or {}, options)
    report = Report(run.log)
    journal: JournalFollower | None = None
    source: AsyncIterator[Chunk]
    if options.file is not None:
        source = _file_lines(FileFollower(
            options.file, cursor if isinstance(cursor, FilePosition) else None, follow=options.follow,
            at_end=options.at_end, log=run.log), options.year)
    else:
        journal = JournalFollower(cursor if isinstance(cursor, str) else None, follow=options.follow,
                                  at_end=options.at_end, unit=options.unit, log=run.log)
        source = _journal_lines(journal)

    failed_to_save = False

    def save(document: dict[str, Any]) -> None:
        nonlocal failed_to_save
        try:
            store.save(document)
        except CheckpointError as error:  # said once; the next run reads more again
            if not failed_to_save:
                run.log(str(error))
            failed_to_save = True

    feed = Feed(run.socket, EVENTS, log=run.log, patience=None if options.follow else BOUNDED_PATIENCE,
                on_checkpoint=save)
    position: FilePosition | str | None = cursor
    changed, last_mark = False, time.monotonic()

    def mark() -> None:
        nonlocal changed, last_mark
        feed.mark(_document(options, position, joiner))
        changed, last_mark = False, time.monotonic()

    try:
        async with feed, contextlib.aclosing(with_idle(source, IDLE_SECONDS)) as items:
            async for item in items:
                if run.stop.is_set():
                    feed.hurry(STOP_GRACE)
                    break
                if item is None:
                    if changed:
                        mark()
                    continue
                lines, position = item
                report.records += len(lines)
                for line in lines:
                    if line is not None:
                        await put(feed, joiner.feed(line), report)
                changed = True
                if time.monotonic() - last_mark >= CHECKPOINT_SECONDS:
                    mark()
            if changed or saved is None:
                mark()
    except GaveUp as error:
        run.log(f"stopped with events not sent ({error}); the next run reads them again")
        return 1
    if journal is not None and journal.malformed:
        run.log(f"{journal.malformed} line(s) of journalctl were no JSON entry")
    return outcome(run, report, feed)


async def _file_lines(follower: FileFollower, year: int | None) -> AsyncIterator[Chunk]:
    async for lines, position in follower.chunks():
        yield [parse_syslog_line(raw.decode("utf-8", "replace"), year) for raw in lines], position


async def _journal_lines(follower: JournalFollower) -> AsyncIterator[Chunk]:
    async for entries in follower.chunks():
        yield [parse_journal_entry(entry) for entry in entries], entries[-1]["__CURSOR"]


def _restored(run: Run, saved: dict[str, Any], options: Options) -> tuple[Joiner, FilePosition | str | None]:
    """The joiner and the cursor of the last checkpoint, when it is one of this log."""
    if not saved:
        return Joiner(), None
    kind = "file" if options.file is not None else "journal"
    if saved.get("version") != CHECKPOINT_VERSION or saved.get("source") != kind:
        run.log("the checkpoint is of another version or source: starting afresh")
        return Joiner(), None
    try:
        joiner = Joiner.restore(saved.get("joiner") or {})
    except ValueError as error:
        run.log(f"the checkpoint's joiner state is unusable ({error}): starting with an empty one")
        joiner = Joiner()
    if options.file is not None:
        return joiner, FilePosition.from_json(saved.get("position"))
    cursor = saved.get("cursor")
    return joiner, cursor if isinstance(cursor, str) and cursor else None


def _document(options: Options, position: FilePosition | str | None, joiner: Joiner) -> dict[str, Any]:
    """The checkpoint at this moment: where reading got to, and what the joiner knows."""
    document: dict[str, Any] = {"version": CHECKPOINT_VERSION}
    if options.file is not None:
        document.update(source="file", path=str(options.file),
                        position=position.as_json() if isinstance(position, FilePosition) else None)
    else:
        document.update(source="journal", cursor=position if isinstance(position, str) else None)
    # state() is a copy: the joiner goes on changing while the daemon takes the events.
    document["joiner"] = joiner.state()
    return document
