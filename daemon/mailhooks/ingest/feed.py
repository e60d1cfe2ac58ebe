"""What a source made, posted to the running daemon: in batches (by size and by time),
over one kept connection to its socket, retried as long as the command's contract says.

`Feed` takes items that are each one JSON document already encoded (an event for
`POST /events`, a KumoMTA record for `POST /sources/kumomta`), and `mark`s: a mark is
reached once every item put before it was accepted, and only then handed to
`on_checkpoint`, so a cursor saved there never runs ahead of what the daemon spooled.

How long it keeps trying is its `patience`: None waits out any outage (a log followed
on a pipe must never lose a line), 0 gives up at the first failure (`ingest dsn`: the MTA
keeps the message and tries again), a number of seconds in between. An outage is one
line when it starts and one when it ends, never one per try. What the daemon refuses for
good (400, 415, a 413 of one item) is counted and said, and the feed goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

from mailhooks.cli.client import Reply, Unreachable, request, session

MAX_EVENTS: Final = 500
MAX_WAIT: Final = 1.0
MAX_BACKLOG: Final = 50_000
FIRST_BACKOFF: Final = 0.25
MAX_BACKOFF: Final = 30.0
REQUEST_TIMEOUT: Final = 60.0
# Answers that no retry changes: the batch is refused whole, nothing of it was spooled.
REFUSED: Final = frozenset({400, 413, 415, 422})


@dataclass(frozen=True)
class Target:
    """Where items go and how a batch of them is written."""

    path: str
    content_type: str
    start: bytes
    separator: bytes
    end: bytes

    def body(self, items: Sequence[bytes]) -> bytes:
        return self.start + self.separator.join(items) + self.end


EVENTS: Final = Target("/events", "application/x-ndjson", b"", b"\n", b"\n")
KUMOMTA: Final = Target("/sources/kumomta", "application/json", b"[", b",", b"]")


class GaveUp(Exception):
    """The daemon could not take the items within the feed's patience."""


@dataclass
class Counts:
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0


class Feed:
    """Posts items in batches of `max_events`, or when the oldest has waited `max_wait`
    seconds; holds at most `max_backlog` items (then `put` waits: the reader slows down
    rather than filling memory while the daemon is away). Use it as an async context
    manager: leaving it sends what is left, within the patience."""

    def __init__(self, socket: Path, target: Target, *, log: Callable[[str], None],
                 patience: float | None, max_events: int = MAX_EVENTS, max_wait: float = MAX_WAIT,
                 max_backlog: int = MAX_BACKLOG,
                 on_checkpoint: Callable[[Any], None] | None = None) -> None:
        self.socket = socket
        self.target = target
        self.log = log
        self.patience = patience
        self.max_events = max(1, max_events)
        self.max_wait = max_wait
        self.max_backlog = max(self.max_events, max_backlog)
        self.on_checkpoint = on_checkpoint
        self.counts = Counts()
        self._pending: list[bytes] = []
        self._oldest = 0.0
        self._put = 0  # items put so far
        self._done = 0  # items answered so far (accepted or refused)
        self._marks: list[tuple[int, Any]] = []
        self._closing = False
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._client: aiohttp.ClientSession | None = None
        self._outage_since: float | None = None
        self._hurry: float | None = None  # give up past this moment, whatever the patience
        self._hurried = asyncio.Event()

    async def __aenter__(self) -> Feed:
        self._client = session(self.socket)
        self._sender = asyncio.create_task(self._run(), name="feed")
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                await self.close()
        finally:
            if self._sender is not None and not self._sender.done():
                self._sender.cancel()
                await asyncio.gather(self._sender, return_exceptions=True)
            if self._client is not None:
                await self._client.close()

    # -- the reader's side ------------------------------------------------------------

    async def put(self, items: Sequence[bytes]) -> None:
        """Queue items (each one encoded JSON document) for the daemon."""
        if not items:
            return
        self._check()
        was_empty = not self._pending
        if was_empty:
            self._oldest = time.monotonic()
        self._pending.extend(items)
        self._put += len(items)
        if was_empty or len(self._pending) >= self.max_events:
            self._wake.set()  # the batch's timer starts, or the batch is full
        while len(self._pending) >= self.max_backlog:
            self._room.clear()
            await self._wait(self._room)

    def mark(self, value: Any) -> None:
        """`value` goes to `on_checkpoint` once everything put so far is answered."""
        if self._done >= self._put:
            self._reach(value)
        else:
            self._marks.append((self._put, value))

    def hurry(self, seconds: float) -> None:
        """Give up on what is not sent within `seconds` from now (the command is asked
        to stop): a retry waiting longer ends at once."""
        self._hurry = time.monotonic() + seconds
        self._hurried.set()

    async def close(self) -> None:
        """Send what is left and stop; GaveUp when the patience runs out first."""
        self._closing = True
        self._wake.set()
        if self._sender is not None:
            await self._sender

    def _check(self) -> None:
        if self._sender is not None and self._sender.done() and not self._sender.cancelled():
            error = self._sender.exception()
            if error is not None:
                raise error

    async def _wait(self, event: asyncio.Event) -> None:
        """Wait for `event`, or for the sender to fail (its error raised here)."""
        assert self._sender is not None
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({waiter, self._sender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        self._check()

    # -- the sender -------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch is None:
                return
            await self._send(batch)
            del self._pending[:len(batch)]
            if self._pending:
                self._oldest = time.monotonic()
            self._answered(len(batch))
            self._room.set()

    async def _next_batch(self) -> list[bytes] | None:
        while True:
            if len(self._pending) >= self.max_events or (self._pending and self._closing):
                return self._pending[:self.max_events]
            timeout = None
            if self._pending:
                timeout = self._oldest + self.max_wait - time.monotonic()
                if timeout <= 0:
                    return self._pending[:self.max_events]
            elif self._closing:
                return None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    def _answered(self, count: int) -> None:
        self._done += count
        reached = None
        while self._marks and self._marks[0][0] <= self._done:
            reached = self._marks.pop(0)
        if reached is not None:
            self._reach(reached[1])

    def _reach(self, value: Any) -> None:
        if self.on_checkpoint is not None:
            self.on_checkpoint(value)

    async def _send(self, batch: list[bytes]) -> None:
        """One batch, retried within the patience; a 413 splits it in halves."""
        assert self._client is not None
        deadline = None if self.patience is None else time.monotonic() + self.patience
        backoff = FIRST_BACKOFF
        while True:
            try:
                reply = await request(self._client, self.socket, "POST", self.target.path,
                                      body=self.target.body(batch), content_type=self.target.content_type,
                                      timeout=REQUEST_TIMEOUT)
            except Unreachable as error:
                problem, wait = str(error), backoff
            else:
                if 200 <= reply.status < 300:
                    self._recovered()
                    self._count(reply, len(batch))
                    return
                if reply.status == 413 and len(batch) > 1:
                    half = len(batch) // 2
                    await self._send(batch[:half])
                    await self._send(batch[half:])
                    return
                if reply.status in REFUSED:
                    self._refused(reply, len(batch))
                    return
                problem = f"the daemon answered {reply.status}: {_error_of(reply)}"
                wait = max(backoff, reply.retry_after or 0.0)
            wait = min(wait, MAX_BACKOFF)
            for limit in (deadline, self._hurry):
                if limit is not None and time.monotonic() + wait > limit:
                    raise GaveUp(problem)
            self._unavailable(problem, len(self._pending))
            try:
                await asyncio.wait_for(self._hurried.wait(), wait)
            except TimeoutError:
                pass
            else:
                self._hurried.clear()  # woken once, to look at the new limit
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _count(self, reply: Reply, sent: int) -> None:
        answer = reply.answer if isinstance(reply.answer, dict) else {}
        accepted, duplicates = answer.get("accepted"), answer.get("duplicates")
        self.counts.accepted += accepted if isinstance(accepted, int) else sent
        self.counts.duplicates += duplicates if isinstance(duplicates, int) else 0

    def _refused(self, reply: Reply, count: int) -> None:
        self.counts.refused += count
        details = reply.answer.get("details") if isinstance(reply.answer, dict) else None
        first = details[0] if isinstance(details, list) and details and isinstance(details[0], dict) else {}
        where = f" (item {first.get('index')}: {first.get('field')}: {first.get('message')})" if first else ""
        self.log(f"the daemon refused {count} item(s) for good ({reply.status}): {_error_of(reply)}{where}")

    def _unavailable(self, problem: str, held: int) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self.log(f"the daemon cannot take events now: {problem}; holding {held} and retrying")

    def _recovered(self) -> None:
        if self._outage_since is not None:
            seconds = time.monotonic() - self._outage_since
            self._outage_since = None
            self.log(f"the daemon takes events again, after {seconds:.0f} s; sending what was held")


def _error_of(reply: Reply) -> str:
    if isinstance(reply.answer, dict) and isinstance(reply.answer.get("error"), str):
        return str(reply.answer["error"])[:300]
    return str(reply.answer)[:300]
