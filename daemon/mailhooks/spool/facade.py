"""[keep] The durable queue: SQLite in WAL mode, one row per event and per delivery.

`Spool` is what the rest of the daemon sees: intake adds events and their deliveries, the
lanes read what is due and record outcomes, operators list and replay. Writes go through
the group-commit writer (`writer.py`); reads use their own connection and thread, so in
WAL mode they never wait for a commit's fsync. The SQL is in `sql.py`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from mailhooks.spool import per_webhook, schema, sql
from mailhooks.spool.records import (
    Added,
    AttemptResult,
    Delivery,
    DeliveryRecord,
    Intake,
    NewEvent,
    Outcomes,
    ShareOutcome,
    SpoolError,
    SpoolStats,
    WebhookState,
)
from mailhooks.spool.writer import GroupWriter

T = TypeVar("T")


class Spool:
    def __init__(self, path: Path, writer: GroupWriter, reader: sqlite3.Connection,
                 reader_executor: ThreadPoolExecutor, retention: float) -> None:
        self.path = path
        self.retention = retention
        self._writer = writer
        self._reader: sqlite3.Connection | None = reader
        self._reader_executor = reader_executor

    # -- lifecycle -------------------------------------------------------------------

    @classmethod
    async def open(cls, path: Path, *, max_bytes: int, retention: float) -> Spool:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await GroupWriter.open(lambda: schema.open_writer(path), max_bytes)
        reader_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool-read")
        try:
            reader = await asyncio.get_running_loop().run_in_executor(
                reader_executor, schema.open_reader, path
            )
        except BaseException:
            reader_executor.shutdown(wait=False)
            await writer.close()
            raise
        return cls(path, writer, reader, reader_executor, retention)

    async def close(self) -> None:
        """Commit what is queued, then close the database."""
        await self._writer.close()
        if self._reader is not None:
            await asyncio.get_running_loop().run_in_executor(
                self._reader_executor, self._reader.close
            )
            self._reader = None
        self._reader_executor.shutdown(wait=True)

    async def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            if self._reader is None:
                raise SpoolError("spool is closed")
            return query(self._reader)

        return await asyncio.get_running_loop().run_in_executor(self._reader_executor, run)

    async def _write(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        result: T = await self._writer.submit(operation)
        return result

    # -- intake -----------------------------------------------------------------------

    async def add(self, events: Sequence[NewEvent], hand_over: bool = True) -> Added:
        """Spool events and their deliveries; returns how many events were new (an
        `event_id` seen before is acknowledged, not spooled twice) and, with `hand_over`,
        the deliveries made for them. Returns once committed."""
        added: Added = await self._writer.submit(Intake(events, time.time(), hand_over))
        return added

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += Path(f"{self.path}{suffix}").stat().st_size
            except FileNotFoundError:
                pass
        return total

    # -- dispatch ---------------------------------------------------------------------

    async def due_or_next(
        self, webhook_id: str, now: float, limit: int, skip: Iterable[int] = (),
        *, batches: bool = False,
    ) -> tuple[list[Delivery], float | None]:
        """Up to `limit` of the webhook's deliveries due at `now`, oldest first, leaving
        out the ids in `skip` (those being attempted); and when none is due, when the
        next one falls due (None: nothing is pending). One trip to the reader thread
        where a lane going idle used to make two."""
        skipped = list(skip)  # copied here: the lane's set changes while the query runs

        select = sql.due_batch if batches else sql.due

        def query(connection: sqlite3.Connection) -> tuple[list[Delivery], float | None]:
            found = select(connection, webhook_id, now, limit, skipped)
            return found, None if found else sql.next_due(connection, webhook_id, now)

        return await self._read(query)

    async def pending_webhooks(self) -> dict[str, float]:
        """Each webhook with pending deliveries, and its earliest due time."""
        return await self._read(sql.pending_webhooks)

    def record_soon(self, results: Sequence[AttemptResult]) -> asyncio.Future[None]:
        """Queue attempt outcomes for a coming commit (all of its outcomes are one
        statement); the future is done once they are committed."""
        now = time.time()
        return self._writer.submit(Outcomes([
            (r.state, r.attempts, r.next_attempt_at, r.status, r.error, now, r.delivery_id, r.batch)
            for r in results
        ]))

    async def drop_webhook(self, webhook_id: str) -> int:
        """Drop the pending deliveries of a deleted webhook; returns how many."""
        now = time.time()
        return await self._write(lambda connection: sql.drop_webhook(connection, webhook_id, now))

    # -- operators ----------------------------------------------------------------------

    async def deliveries(
        self, state: str | None = None, webhook_id: str | None = None, limit: int = 100
    ) -> list[DeliveryRecord]:
        return await self._read(lambda connection: sql.deliveries(connection, state, webhook_id, limit))

    async def replay(
        self, delivery_ids: Sequence[int] = (), webhook_id: str | None = None,
        pending_now: bool = False, caps: dict[str, int] | None = None,
        default_cap: int = sys.maxsize,
    ) -> tuple[list[str], int]:
        """Re-queue failed deliveries, no more of a webhook's than the room under its cap
        of pending ones (`caps`, else `default_cap`), its oldest first; with
        `pending_now` also make the webhook's pending ones due now. Returns the webhook
        id of each one re-queued, and how many were left failed for want of room."""
        now = time.time()
        return await self._write(lambda connection: sql.replay(
            connection, delivery_ids, webhook_id, now, caps or {}, default_cap, pending_now))

    async def keep_within(self, caps: dict[str, int], default_cap: int, claimed: list[int],
                          at_most: int | None = None) -> dict[str, ShareOutcome]:
        """Keep each webhook within its cap of pending and failed deliveries (rows),
        changing at most `at_most` rows of each; the ids in `claimed` (being attempted)
        are left pending."""
        now = time.time()
        return await self._write(lambda connection: per_webhook.keep_within(
            connection, caps, default_cap, claimed, now, at_most))

    async def evict_failed(self, below: int) -> dict[str, int]:
        """Room for intake in a full spool: failed deliveries go, the oldest first, from
        the webhooks holding the most failed bytes first, until fewer than `below` bytes
        are in use; how many went, by webhook."""
        return await self._write(lambda connection: per_webhook.evict_failed(connection, below))

    async def bytes_per_delivery(self) -> float:
        return await self._read(per_webhook.bytes_per_delivery)

    async def webhook_states(self) -> dict[str, WebhookState]:
        return await self._read(per_webhook.webhook_states)

    async def save_webhook_state(self, webhook_id: str, state: WebhookState) -> None:
        await self._write(lambda connection: per_webhook.save_webhook_state(connection, webhook_id, state))

    async def stats(self) -> SpoolStats:
        return await self._read(sql.stats)

    async def prune(self, now: float | None = None) -> int:
        """Forget delivered and dropped rows older than the retention, and their events;
        hand the freed pages back to the file system."""
        cutoff = (now or time.time()) - self.retention
        removed = await self._write(lambda connection: sql.prune(connection, cutoff))
        if removed:
            await self._writer.maintain(sql.compact)
        return removed
