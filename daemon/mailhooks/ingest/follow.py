"""Following a log file as `tail -F` does, with a position to resume from.

The position is the file's inode and the offset just after the last whole line read. On
start, the same inode resumes at the offset (from the start when the file is now shorter:
it was truncated); another inode means the file was rotated while nothing read it, so
the rest of the old one is read first when it is still in the same directory under
another name (`mail.log.1`), then the new file from its start.

While following, at the end of the file the path is looked at again every `poll`
seconds: another inode there is a rotation, a shorter file a truncation (copytruncate:
read again from the start), no file a rotation still under way (waited for). After a
rotation the old file is read on until it has had nothing new for `rotation_grace`
seconds, because syslog goes on writing to it until logrotate's postrotate tells it to
reopen; then its last line is taken whole and the new file is read from its start.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mailhooks.ingest.reading import CHUNK_BYTES, Lines
from mailhooks.reasons import os_reason

POLL_SECONDS: Final = 0.2
ROTATION_GRACE_SECONDS: Final = 2.0


class FollowError(Exception):
    """The file cannot be read (and is not to be waited for): one line saying why."""


@dataclass(frozen=True)
class FilePosition:
    """Where reading stopped: the file's inode, and the offset after its last whole line."""

    inode: int
    offset: int

    def as_json(self) -> dict[str, int]:
        return {"inode": self.inode, "offset": self.offset}

    @classmethod
    def from_json(cls, value: Any) -> FilePosition | None:
        if not isinstance(value, dict):
            return None
        inode, offset = value.get("inode"), value.get("offset")
        if not isinstance(inode, int) or not isinstance(offset, int) or offset < 0:
            return None
        return cls(inode, offset)


class FileFollower:
    """The lines of `path` from `position` (or its start, or its end with `at_end`), as
    (lines, the position after them); to its end, or on and on with `follow`."""

    def __init__(self, path: Path, position: FilePosition | None, *, follow: bool, at_end: bool,
                 log: Callable[[str], None], poll: float = POLL_SECONDS,
                 rotation_grace: float = ROTATION_GRACE_SECONDS) -> None:
        self.path = path
        self.position = position
        self.follow = follow
        self.at_end = at_end
        self.log = log
        self.poll = poll
        self.rotation_grace = rotation_grace

    async def chunks(self) -> AsyncIterator[tuple[list[bytes], FilePosition]]:
        descriptor, inode = await self._open()
        try:
            offset = 0
            if self.position is not None and self.position.inode == inode:
                size = os.fstat(descriptor).st_size
                offset = self.position.offset if self.position.offset <= size else 0
                if offset != self.position.offset:
                    self.log(f"{self.path} is shorter than when it was last read: reading it from the start")
            elif self.position is not None:
                async for item in self._rest_of_rotated(self.position):
                    yield item
            elif self.at_end:
                offset = os.fstat(descriptor).st_size
            os.lseek(descriptor, offset, os.SEEK_SET)
            lines = Lines()
            clock = asyncio.get_running_loop().time
            rotated = False
            quiet_since: float | None = None  # since when a rotated file has had nothing new
            while True:
                chunk = os.read(descriptor, CHUNK_BYTES)
                if chunk:
                    quiet_since = None
                    offset += len(chunk)
                    dropped = lines.dropped
                    complete = lines.feed(chunk)
                    if lines.dropped != dropped:
                        self.log(f"{self.path}: a line longer than {lines.max_line} bytes was dropped")
                    if complete:
                        yield complete, FilePosition(inode, offset - lines.waiting)
                    continue
                if not self.follow:
                    return  # a last line still being written is read next time, whole
                now = self._stat()
                if now is not None and now.st_ino != inode:
                    if not rotated:
                        rotated = True
                        self.log(f"{self.path} was rotated: reading the old file until it has been "
                                 f"quiet for {self.rotation_grace:g} s")
                    if quiet_since is None:
                        quiet_since = clock()
                    if clock() - quiet_since < self.rotation_grace:
                        await asyncio.sleep(self.poll)
                        continue
                    rotated, quiet_since = False, None
                    tail = lines.rest()
                    if tail:
                        yield [tail], FilePosition(inode, offset)
                    os.close(descriptor)
                    descriptor, inode = await self._open()
                    offset = 0
                    self.log(f"{self.path}: reading the new file")
                elif now is not None and now.st_size < offset:
                    lines.rest()
                    offset = os.lseek(descriptor, 0, os.SEEK_SET)
                    self.log(f"{self.path} was truncated: reading it from the start")
                else:
                    await asyncio.sleep(self.poll)
        finally:
            os.close(descriptor)

    async def _open(self) -> tuple[int, int]:
        """The file open for reading, and its inode; waited for while it is missing when
        following."""
        said = False
        while True:
            try:
                descriptor = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                if not self.follow:
                    raise FollowError(f"cannot read {self.path}: no such file") from None
                if not said:
                    self.log(f"waiting for {self.path} to appear")
                    said = True
                await asyncio.sleep(self.poll)
                continue
            except OSError as error:
                raise FollowError(f"cannot read {self.path}: {os_reason(error)}") from None
            status = os.fstat(descriptor)
            if not stat.S_ISREG(status.st_mode):
                os.close(descriptor)
                raise FollowError(f"{self.path} is not a regular file")
            return descriptor, status.st_ino

    def _stat(self) -> os.stat_result | None:
        try:
            return self.path.stat()
        except OSError:
            return None

    async def _rest_of_rotated(
        self, position: FilePosition
    ) -> AsyncIterator[tuple[list[bytes], FilePosition]]:
        """The lines the rotated file got after `position`, when it is still beside the
        path under another name."""
        old = self._find(position.inode)
        if old is None:
            self.log(f"{self.path} was rotated since it was last read, and the old file is not "
                     "beside it: reading the new one from the start")
            return
        self.log(f"{self.path} was rotated since it was last read: reading the rest of {old} first")
        try:
            descriptor = os.open(old, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            self.log(f"cannot read {old}: {os_reason(error)}")
            return
        try:
            size = os.fstat(descriptor).st_size
            offset = os.lseek(descriptor, position.offset if position.offset <= size else 0, os.SEEK_SET)
            lines = Lines()
            while chunk := os.read(descriptor, CHUNK_BYTES):
                offset += len(chunk)
                complete = lines.feed(chunk)
                if complete:
                    yield complete, FilePosition(position.inode, offset - lines.waiting)
            tail = lines.rest()
            if tail:
                yield [tail], FilePosition(position.inode, offset)
        finally:
            os.close(descriptor)

    def _find(self, inode: int) -> Path | None:
        """The file of `inode` in the path's directory, but the path itself."""
        try:
            with os.scandir(self.path.parent) as entries:
                for entry in entries:
                    if entry.name != self.path.name and entry.is_file(follow_symlinks=False) \
                            and entry.inode() == inode:
                        return Path(entry.path)
        except OSError:
            return None
        return None
