"""Reading for `mailhooks ingest`: stdin without blocking the event loop, lines out of
chunks, and a reader's items with a word when it falls idle (the moment to save a
cursor: everything before it has been read)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Final, TypeVar

T = TypeVar("T")

CHUNK_BYTES: Final = 1 << 16
MAX_LINE_BYTES: Final = 1 << 20
QUEUED_CHUNKS: Final = 16


class Lines:
    """Splits chunks into lines (without their line end); the text after the last line
    end waits for the next chunk. A line longer than `max_line` is dropped whole (and
    counted in `dropped`): no input grows memory without bound, and no piece of a line
    is read as a record of its own."""

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self.max_line = max_line
        self.dropped = 0
        self._tail = b""
        self._skipping = False  # within a line that is too long, until its end

    @property
    def waiting(self) -> int:
        """Bytes read that are no whole line yet (a dropped line's are not kept)."""
        return len(self._tail)

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._skipping:
            end = chunk.find(b"\n")
            if end < 0:
                return []
            chunk, self._skipping = chunk[end + 1:], False
        data = self._tail + chunk if self._tail else chunk
        lines = data.split(b"\n")
        self._tail = lines.pop()
        if len(self._tail) > self.max_line:
            self._tail, self._skipping = b"", True
            self.dropped += 1
        long = [line for line in lines if len(line) > self.max_line]
        if long:  # whole in one chunk, end and all
            self.dropped += len(long)
            lines = [line for line in lines if len(line) <= self.max_line]
        return lines

    def rest(self) -> bytes:
        """What is left after the last line end (the input's last line, at its end)."""
        tail, self._tail, self._skipping = self._tail, b"", False
        return tail


async def chunks_of(fd: int) -> AsyncIterator[bytes]:
    """The chunks of a file descriptor (a pipe, a terminal or a file) until its end, read
    in a thread of their own: a blocking read must not stop the event loop, and a daemon
    thread never keeps the process from exiting."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue(QUEUED_CHUNKS)

    def read() -> None:
        while True:
            try:
                chunk: bytes | BaseException = os.read(fd, CHUNK_BYTES)
            except OSError as error:
                chunk = error
            try:
                asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
            except (RuntimeError, asyncio.CancelledError):  # the loop is gone
                return
            if not chunk or isinstance(chunk, BaseException):
                return

    threading.Thread(target=read, name="stdin", daemon=True).start()
    while True:
        chunk = await queue.get()
        if isinstance(chunk, BaseException):
            raise chunk
        if not chunk:
            return
        yield chunk


async def with_idle(source: AsyncIterator[T], idle: float) -> AsyncGenerator[T | None, None]:
    """The items of `source`, and None whenever none came for `idle` seconds. `source`
    runs in a task of its own, so waiting here never cancels it halfway through."""
    queue: asyncio.Queue[tuple[bool, T | BaseException | None]] = asyncio.Queue(QUEUED_CHUNKS)

    async def produce() -> None:
        try:
            async for item in source:
                await queue.put((True, item))
        except Exception as error:
            await queue.put((False, error))
        else:
            await queue.put((False, None))

    task = asyncio.create_task(produce(), name="reader")
    try:
        while True:
            try:
                more, item = await asyncio.wait_for(queue.get(), idle)
            except TimeoutError:
                yield None
                continue
            if not more:
                if isinstance(item, BaseException):
                    raise item
                return
            yield item  # type: ignore[misc]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
