"""The spool's group-commit writer: one thread owns the writing connection, and writes
from concurrent requests and from the dispatcher queue up and share one transaction.

`202 Accepted` means "committed to disk": a caller's future is done only after the
transaction that holds its work is committed with `synchronous=FULL`. Sharing commits
makes throughput grow with concurrency while every caller still waits for its own
durability; the event loop never blocks on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from mailhooks.spool import schema, sql
from mailhooks.spool.records import Intake, Outcomes, SpoolError

T = TypeVar("T")
MAX_GROUP: Final = 512
# Seconds attempt outcomes may wait for others to share their commit.
RECORD_LINGER: Final = 0.01

Operation = Callable[[sqlite3.Connection], Any] | Intake | Outcomes
_Queued = tuple[Operation, "asyncio.Future[Any]"]


class GroupWriter:
    """Queues writes and commits them in groups on its own thread."""

    def __init__(self, connection: sqlite3.Connection, max_bytes: int) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._max_bytes = max_bytes
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, connect: Callable[[], sqlite3.Connection], max_bytes: int) -> GroupWriter:
        """Connect on the writer's own thread (SQLite connections stay on one thread)."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        try:
            connection = await asyncio.get_running_loop().run_in_executor(executor, connect)
        finally:
            executor.shutdown(wait=False)
        writer = cls(connection, max_bytes)
        writer._task = asyncio.create_task(writer._loop(), name="spool-writer")
        return writer

    def submit(self, operation: Operation) -> asyncio.Future[Any]:
        """Queue `operation` for a coming commit; the future is done once it is committed
        (or holds the error that kept it from being)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((operation, future))
        return future

    async def maintain(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Work on the writer's connection outside a transaction (vacuum, checkpoint)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: work(self._db()))

    async def close(self) -> None:
        """Commit what is queued, then close the connection."""
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._connection is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._connection.close)
            self._connection = None
        self._executor.shutdown(wait=True)

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise SpoolError("spool is closed")
        return self._connection

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            self._take_queued(batch)
            if all(isinstance(operation, Outcomes) for operation, _ in batch):
                # Nobody waits for outcomes to be stored (the delivery is done), so they
                # gather for a moment and share a commit's fsync; anything else queued
                # meanwhile ends the wait.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECORD_LINGER):
                        while len(batch) < MAX_GROUP and isinstance(batch[-1][0], Outcomes):
                            batch.append(await self._queue.get())
                self._take_queued(batch)
            try:
                results = await loop.run_in_executor(self._executor, self._commit, batch)
            except Exception as error:  # the commit failed: nobody in the batch is durable
                results = [error] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
                self._queue.task_done()

    def _take_queued(self, batch: list[_Queued]) -> None:
        while len(batch) < MAX_GROUP and not self._queue.empty():
            batch.append(self._queue.get_nowait())

    def _commit(self, batch: list[_Queued]) -> list[Any]:
        """One transaction for everything queued: intake merged into one insert, outcomes
        into one update, every other write under its own savepoint, so a failure undoes
        only its own work."""
        connection = self._db()
        intake = [index for index, (operation, _) in enumerate(batch) if isinstance(operation, Intake)]
        results: list[Any] = [None] * len(batch)
        connection.execute("BEGIN IMMEDIATE")
        try:
            if intake:
                connection.execute("SAVEPOINT intake")
                requests = [operation for operation, _ in batch if isinstance(operation, Intake)]
                added: list[Any]
                try:
                    added = sql.insert(connection, requests, self._max_bytes)
                except Exception as error:  # the whole intake of this commit is refused
                    connection.execute("ROLLBACK TO intake")
                    added = [error] * len(intake)
                connection.execute("RELEASE intake")
                for index, outcome in zip(intake, added, strict=True):
                    results[index] = outcome
            rows = [row for operation, _ in batch if isinstance(operation, Outcomes)
                    for row in operation.rows]
            if rows:
                sql.record(connection, rows)
            for index, (operation, _) in enumerate(batch):
                if isinstance(operation, Intake | Outcomes):
                    continue
                connection.execute("SAVEPOINT op")
                try:
                    results[index] = operation(connection)
                except Exception as error:  # only this caller's work is undone
                    connection.execute("ROLLBACK TO op")
                    results[index] = error
                connection.execute("RELEASE op")
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise schema.disk_error(error) from None
        return results
