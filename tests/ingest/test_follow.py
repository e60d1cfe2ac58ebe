"""Following a log file as `tail -F` does: to its end, across a rename and a truncation,
and resumed from a position, the rest of a file rotated meanwhile read first."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailhooks.ingest.follow import FileFollower, FilePosition, FollowError
from tests.utils import wait_until


async def read_all(follower: FileFollower) -> tuple[list[bytes], FilePosition | None]:
    lines: list[bytes] = []
    last = None
    async for chunk, position in follower.chunks():
        lines.extend(chunk)
        last = position
    return lines, last


@contextlib.asynccontextmanager
async def following(path: Path, position: FilePosition | None = None
                    ) -> AsyncIterator[tuple[list[bytes], list[FilePosition], list[str]]]:
    """A follower of `path` running in a task: the lines it gave, its positions, its logs."""
    lines: list[bytes] = []
    positions: list[FilePosition] = []
    logs: list[str] = []
    follower = FileFollower(path, position, follow=True, at_end=False, log=logs.append, poll=0.02,
                            rotation_grace=0.3)

    async def consume() -> None:
        async for chunk, where in follower.chunks():
            lines.extend(chunk)
            positions.append(where)

    task = asyncio.create_task(consume())
    try:
        yield lines, positions, logs
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if task.done() and not task.cancelled() and task.exception():
            raise task.exception()  # type: ignore[misc]


def append(path: Path, text: str) -> None:
    with path.open("a") as file:
        file.write(text)


async def test_to_the_end_a_last_line_still_written_left_for_next_time(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_text("one\ntwo\nthr")
    lines, position = await read_all(FileFollower(log, None, follow=False, at_end=False, log=print))
    assert lines == [b"one", b"two"]
    assert position == FilePosition(os.stat(log).st_ino, 8)
    append(log, "ee\nfour\n")
    again, _ = await read_all(FileFollower(log, position, follow=False, at_end=False, log=print))
    assert again == [b"three", b"four"]


async def test_a_first_run_at_the_end_reads_only_what_comes(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_text("old\n")
    lines, position = await read_all(FileFollower(log, None, follow=False, at_end=True, log=print))
    assert lines == [] and position is None


async def test_follows_across_a_rename_and_a_truncation(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_text("a1\n")
    async with following(log) as (lines, positions, logs):
        await wait_until(lambda: lines == [b"a1"], 5, "the first line")
        append(log, "a2\na3 without its end")
        await wait_until(lambda: lines == [b"a1", b"a2"], 5, "the second line")
        log.rename(tmp_path / "mail.log.1")
        log.write_text("b1\n")
        await wait_until(lambda: lines[2:] == [b"a3 without its end", b"b1"], 5, "the rotation")
        assert positions[-1].inode == os.stat(log).st_ino
        append(log, "b2\n")
        await wait_until(lambda: lines[-1] == b"b2", 5, "a line after the rotation")
        with log.open("r+") as file:  # copytruncate
            file.truncate(0)
        append(log, "c1\n")
        await wait_until(lambda: lines[-1] == b"c1", 5, "the line after the truncation")
    assert lines == [b"a1", b"a2", b"a3 without its end", b"b1", b"b2", b"c1"]
    assert any("rotated" in line for line in logs) and any("truncated" in line for line in logs)


async def test_lines_written_to_the_old_file_after_a_rotation_are_read_first(tmp_path: Path) -> None:
    # syslog writes to the renamed file until logrotate's postrotate makes it reopen.
    log = tmp_path / "mail.log"
    log.write_text("a1\n")
    async with following(log) as (lines, _, logs):
        await wait_until(lambda: lines == [b"a1"], 5, "the first line")
        with log.open("a") as writer:
            log.rename(tmp_path / "mail.log.1")
            log.write_text("b1\n")
            await wait_until(lambda: any("rotated" in line for line in logs), 5, "the rotation seen")
            writer.write("a2 after the rename\n")
            writer.flush()
        await wait_until(lambda: lines[-1:] == [b"b1"], 5, "the new file")
    assert lines == [b"a1", b"a2 after the rename", b"b1"]


async def test_resumes_with_the_rest_of_a_file_rotated_meanwhile(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_text("a1\n")
    _, position = await read_all(FileFollower(log, None, follow=False, at_end=False, log=print))
    append(log, "a2\n")
    log.rename(tmp_path / "mail.log.1")
    log.write_text("b1\n")
    logs: list[str] = []
    lines, end = await read_all(FileFollower(log, position, follow=False, at_end=False, log=logs.append))
    assert lines == [b"a2", b"b1"]
    assert end == FilePosition(os.stat(log).st_ino, 3)
    assert "reading the rest of" in logs[0]


async def test_a_file_shorter_than_its_position_is_read_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_text("x\n")
    position = FilePosition(os.stat(log).st_ino, 100)
    lines, _ = await read_all(FileFollower(log, position, follow=False, at_end=False, log=print))
    assert lines == [b"x"]


async def test_waits_for_a_missing_file_when_following(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    async with following(log) as (lines, _, logs):
        await wait_until(lambda: bool(logs), 5, "the word that it waits")
        log.write_text("late\n")
        await wait_until(lambda: lines == [b"late"], 5, "the file's line")


async def test_a_missing_file_is_an_error_when_not_following(tmp_path: Path) -> None:
    with pytest.raises(FollowError, match="no such file"):
        await read_all(FileFollower(tmp_path / "none.log", None, follow=False, at_end=False, log=print))
