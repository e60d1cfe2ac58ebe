"""[keep] The durable queue: SQLite in WAL mode, one row per event and per delivery.

`202 Accepted` means "committed to disk": `add` returns only after the transaction that
holds the events is committed with `synchronous=FULL`. Writes from concurrent requests
and from the dispatcher queue up and share one transaction (group commit), so throughput
grows with concurrency while every caller still waits for its own durability. One thread
owns the connection; the event loop never blocks on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple, TypeVar

SCHEMA_VERSION: Final = 1
_MAX_GROUP: Final = 512
# Seconds attempt outcomes may wait for others to share their commit.
RECORD_LINGER: Final = 0.01
HISTORY_EVICTION_ROWS: Final = 1000
# SQLite allows 32,766 parameters per statement; an event row takes 5.
_ROWS_PER_STATEMENT: Final = 5000
T = TypeVar("T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    message_id TEXT NOT NULL,
    payload BLOB NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    event INTEGER NOT NULL REFERENCES events(id),
    webhook_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'dropped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_status INTEGER,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due
    ON deliveries (webhook_id, next_attempt_at) WHERE state = 'pending';
-- Partial indexes: a new (pending) delivery touches only the two it needs.
CREATE INDEX IF NOT EXISTS deliveries_history
    ON deliveries (updated_at) WHERE state IN ('delivered', 'dropped');
CREATE INDEX IF NOT EXISTS deliveries_failed
    ON deliveries (webhook_id) WHERE state = 'failed';
CREATE INDEX IF NOT EXISTS deliveries_by_event ON deliveries (event);
"""


class SpoolError(Exception):
    """The spool cannot be used: the message says why and what to do."""


class SpoolFull(SpoolError):
    """Intake must wait: answer 503 with Retry-After."""


class NewEvent(NamedTuple):
    """An accepted event on its way into the spool. A named tuple: intake builds one per
    event, at a third of a frozen dataclass's cost."""

    event_id: str
    name: str
    message_id: str
    payload: bytes
    webhook_ids: tuple[str, ...]


class Delivery(NamedTuple):
    """A pending delivery as the dispatcher needs it (a named tuple, like NewEvent and
    AttemptResult: one is made per delivery, on the reader thread and the event loop)."""

    id: int
    webhook_id: str
    event_id: str
    message_id: str
    event_name: str
    payload: bytes
    attempts: int
    created_at: float


class Added(NamedTuple):
    """What one request's events added to the spool: how many of them were new (the
    others repeated an event_id seen before), and their deliveries."""

    events: int
    deliveries: list[Delivery]


class AttemptResult(NamedTuple):
    """What one attempt changed: the new state and, for a retry, when to try again."""

    delivery_id: int
    state: str
    attempts: int
    next_attempt_at: float
    status: int | None
    error: str | None


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    webhook_id: str
    event_id: str
    message_id: str
    event: str
    state: str
    attempts: int
    created_at: float
    updated_at: float
    next_attempt_at: float | None
    last_status: int | None
    last_error: str | None

    def as_json(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


@dataclass(frozen=True)
class SpoolStats:
    pending: int
    failed: int
    oldest_pending_at: float | None
    size_bytes: int
    pending_by_webhook: dict[str, int]


@dataclass(frozen=True)
class _Intake:
    """One request's events, queued for the next commit (merged with the others')."""

    events: Sequence[NewEvent]
    received_at: float
    hand_over: bool  # read back the deliveries made, for the lanes


@dataclass(frozen=True)
class _Record:
    """Attempt outcomes, queued for the next commit (merged with the others')."""

    rows: list[tuple[str, int, float, int | None, str | None, float, int]]


_Op = tuple[Callable[[sqlite3.Connection], Any] | _Intake | _Record, "asyncio.Future[Any]"]


class Spool:
    def __init__(self, path: Path, max_bytes: int, retention: float) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.retention = retention
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self._connection: sqlite3.Connection | None = None
        # Reads (due deliveries, listings, stats) use their own connection and thread:
        # in WAL mode they never wait for a commit's fsync.
        self._reader_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool-read")
        self._reader: sqlite3.Connection | None = None
        self._queue: asyncio.Queue[_Op] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------

    @classmethod
    async def open(cls, path: Path, *, max_bytes: int, retention: float) -> Spool:
        spool = cls(path, max_bytes, retention)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(spool._executor, spool._connect)
        except BaseException:
            spool._executor.shutdown(wait=False)
            spool._reader_executor.shutdown(wait=False)
            raise
        spool._writer = asyncio.create_task(spool._write_loop(), name="spool-writer")
        return spool

    def _connect(self) -> None:
        _check_sqlite()
        existed = self.path.exists() and self.path.stat().st_size > 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                connection.close()
                raise SpoolError(
                    f"spool {self.path} was written by a newer mailhooks (schema {version}, "
                    f"this one knows {SCHEMA_VERSION}); run that version, or move the file "
                    "away to start an empty spool"
                )
            if existed:
                check = connection.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    connection.close()
                    raise SpoolError(f"spool {self.path} is damaged ({check}); {_RECOVER}")
            else:
                connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = FULL")
            connection.execute("PRAGMA foreign_keys = ON")
            # Checkpoints keep the WAL near 4 MB; this hands the rest back afterwards.
            connection.execute("PRAGMA journal_size_limit = 8388608")
            connection.executescript(_SCHEMA)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as error:
            raise SpoolError(f"spool {self.path} cannot be opened ({error}); {_RECOVER}") from None
        self._connection = connection
        reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        reader.execute("PRAGMA query_only = ON")
        self._reader = reader

    async def close(self) -> None:
        """Commit what is queued, then close the database."""
        if self._writer is not None:
            await self._queue.join()
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        loop = asyncio.get_running_loop()
        if self._reader is not None:
            await loop.run_in_executor(self._reader_executor, self._reader.close)
            self._reader = None
        self._reader_executor.shutdown(wait=True)
        if self._connection is not None:
            await loop.run_in_executor(self._executor, self._connection.close)
            self._connection = None
        self._executor.shutdown(wait=True)

    # -- the group-commit writer ----------------------------------------------------

    async def _write(self, operation: Callable[[sqlite3.Connection], T] | _Intake | _Record) -> T:
        return await self._enqueue(operation)

    def _enqueue(
        self, operation: Callable[[sqlite3.Connection], T] | _Intake | _Record
    ) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((operation, future))
        return future

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            self._take_queued(batch)
            if all(isinstance(operation, _Record) for operation, _ in batch):
                # Nobody waits for outcomes to be stored (the delivery is done), so they
                # gather for a moment and share a commit's fsync; anything else queued
                # meanwhile ends the wait.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECORD_LINGER):
                        while len(batch) < _MAX_GROUP and isinstance(batch[-1][0], _Record):
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

    def _take_queued(self, batch: list[_Op]) -> None:
        while len(batch) < _MAX_GROUP and not self._queue.empty():
            batch.append(self._queue.get_nowait())

    def _commit(self, batch: list[_Op]) -> list[Any]:
        """One transaction for everything queued: intake merged into one insert, every
        other write under its own savepoint, so a failure undoes only its own work."""
        connection = self._db()
        intake = [index for index, (operation, _) in enumerate(batch) if isinstance(operation, _Intake)]
        results: list[Any] = [None] * len(batch)
        connection.execute("BEGIN IMMEDIATE")
        try:
            if intake:
                connection.execute("SAVEPOINT intake")
                requests = [operation for operation, _ in batch if isinstance(operation, _Intake)]
                added: list[Any]
                try:
                    added = self._insert(requests, connection)
                except Exception as error:  # the whole intake of this commit is refused
                    connection.execute("ROLLBACK TO intake")
                    added = [error] * len(intake)
                connection.execute("RELEASE intake")
                for index, outcome in zip(intake, added, strict=True):
                    results[index] = outcome
            records = [row for operation, _ in batch if isinstance(operation, _Record)
                       for row in operation.rows]
            if records:
                # Outcomes of attempts: plain updates that cannot conflict, so no savepoint;
                # one statement for all of them (see _insert on why).
                connection.execute(
                    "UPDATE deliveries SET state = json_extract(r.value, '$[0]'),"
                    " attempts = json_extract(r.value, '$[1]'),"
                    " next_attempt_at = json_extract(r.value, '$[2]'),"
                    " last_status = json_extract(r.value, '$[3]'),"
                    " last_error = json_extract(r.value, '$[4]'),"
                    " updated_at = json_extract(r.value, '$[5]')"
                    " FROM json_each(?) AS r"
                    " WHERE deliveries.id = json_extract(r.value, '$[6]')"
                    " AND deliveries.state = 'pending'",
                    (json.dumps(records),),
                )
            for index, (operation, _) in enumerate(batch):
                if isinstance(operation, _Intake | _Record):
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
            raise _disk_error(error) from None
        return results

    async def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader_executor, lambda: query(self._read_db()))

    async def _maintain(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Work on the writer's connection outside a transaction (vacuum, checkpoint)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: work(self._db()))

    def _read_db(self) -> sqlite3.Connection:
        if self._reader is None:
            raise SpoolError("spool is closed")
        return self._reader

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise SpoolError("spool is closed")
        return self._connection

    # -- intake -----------------------------------------------------------------------

    async def add(self, events: Sequence[NewEvent], hand_over: bool = True) -> Added:
        """Spool events and their deliveries; returns how many events were new (an
        `event_id` seen before is acknowledged, not spooled twice) and, with `hand_over`,
        the deliveries made for them. Returns once committed."""
        added: Added = await self._write(_Intake(events, time.time(), hand_over))
        return added

    def _insert(self, requests: list[_Intake], connection: sqlite3.Connection) -> list[Added]:
        """The events of every request of one commit, inserted together; what each
        request added.

        A constant number of statements whatever the number of events: SQLite releases
        the GIL around every step, and taking it back while the event loop is busy can
        cost a whole switch interval (5 ms), so a statement per row would make a commit
        of 64 events take hundreds of milliseconds under load.
        """
        self._make_room(connection)
        targets: dict[str, tuple[str, ...]] = {}
        rows: list[tuple[str, str, str, bytes, float]] = []
        for request in requests:
            for event in request.events:
                if event.event_id not in targets:
                    targets[event.event_id] = event.webhook_ids
                    rows.append((event.event_id, event.name, event.message_id, event.payload,
                                 request.received_at))
        known = {
            event_id for (event_id,) in connection.execute(
                "SELECT event_id FROM events WHERE event_id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(targets)),),
            ).fetchall()
        }
        if known:
            rows = [row for row in rows if row[0] not in known]
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            chunk = rows[start:start + _ROWS_PER_STATEMENT]
            connection.execute(
                "INSERT INTO events (event_id, name, message_id, payload, received_at)"
                " VALUES " + ",".join(["(?, ?, ?, ?, ?)"] * len(chunk)),
                [value for row in chunk for value in row],
            )
        inserted = connection.execute(
            "INSERT INTO deliveries (event, webhook_id, state, next_attempt_at, created_at,"
            " updated_at) SELECT e.id, json_extract(pair.value, '$[1]'), 'pending',"
            " e.received_at, e.received_at, e.received_at FROM json_each(?) AS pair"
            " JOIN events AS e ON e.event_id = json_extract(pair.value, '$[0]')",
            (json.dumps([(row[0], webhook) for row in rows for webhook in targets[row[0]]]),),
        )
        wanted = any(request.hand_over for request in requests)
        created = _created(connection, inserted) if wanted else {}
        added = []
        new = {row[0] for row in rows}
        for request in requests:
            mine = {event.event_id for event in request.events} & new
            new -= mine  # a later request with the same event_id is a duplicate
            added.append(Added(len(mine), [
                Delivery(delivery_id, webhook_id, event.event_id, event.message_id, event.name,
                         event.payload, 0, request.received_at)
                for event in request.events if request.hand_over and event.event_id in mine
                for delivery_id, webhook_id in created.pop(event.event_id, ())
            ]))
        return added

    def _make_room(self, connection: sqlite3.Connection) -> None:
        """Refuse intake at `max_bytes`, after making room if history is what fills it.

        The limit counts the pages in use, not the file: pages freed by pruning are
        reused before the file grows. Delivered and dropped rows are history: under
        pressure they go, oldest first, before their retention is up, because accepting
        events matters more than remembering old ones.
        """
        used = _used_bytes(connection)
        while used >= self.max_bytes:
            removed = _forget_history(connection, HISTORY_EVICTION_ROWS)
            if not removed:
                raise SpoolFull(f"spool is full ({used} of {self.max_bytes} bytes in use)")
            used = _used_bytes(connection)

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
        self, webhook_id: str, now: float, limit: int, skip: Iterable[int] = ()
    ) -> tuple[list[Delivery], float | None]:
        """Up to `limit` of the webhook's deliveries due at `now`, oldest first, leaving
        out the ids in `skip` (those being attempted); and when none is due, when the
        next one falls due (None: nothing is pending). One trip to the reader thread
        where a lane going idle used to make two."""
        skipped = list(skip)  # copied here: the lane's set changes while the query runs

        def query(connection: sqlite3.Connection) -> tuple[list[Delivery], float | None]:
            found = _due(connection, webhook_id, now, limit, skipped)
            return found, None if found else _next_due(connection, webhook_id, now)

        return await self._read(query)

    async def pending_webhooks(self) -> dict[str, float]:
        """Each webhook with pending deliveries, and its earliest due time."""
        def query(connection: sqlite3.Connection) -> dict[str, float]:
            rows = connection.execute(
                "SELECT webhook_id, MIN(next_attempt_at) FROM deliveries"
                " WHERE state = 'pending' GROUP BY webhook_id"
            ).fetchall()
            return {webhook: float(due) for webhook, due in rows}

        return await self._read(query)

    def record_soon(self, results: Sequence[AttemptResult]) -> asyncio.Future[None]:
        """Queue attempt outcomes for a coming commit (all of its outcomes are one
        statement); the future is done once they are committed."""
        now = time.time()
        return self._enqueue(_Record([
            (r.state, r.attempts, r.next_attempt_at, r.status, r.error, now, r.delivery_id)
            for r in results
        ]))

    async def drop_webhook(self, webhook_id: str) -> int:
        """Drop the pending deliveries of a deleted webhook; returns how many."""
        now = time.time()

        def update(connection: sqlite3.Connection) -> int:
            return connection.execute(
                "UPDATE deliveries SET state = 'dropped', updated_at = ?,"
                " last_error = 'webhook deleted' WHERE webhook_id = ? AND state = 'pending'",
                (now, webhook_id),
            ).rowcount

        return await self._write(update)

    # -- operators ----------------------------------------------------------------------

    async def deliveries(
        self, state: str | None = None, webhook_id: str | None = None, limit: int = 100
    ) -> list[DeliveryRecord]:
        clauses, parameters = [], []
        if state:
            clauses.append("d.state = ?")
            parameters.append(state)
        if webhook_id:
            clauses.append("d.webhook_id = ?")
            parameters.append(webhook_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""

        def query(connection: sqlite3.Connection) -> list[DeliveryRecord]:
            rows = connection.execute(
                "SELECT d.id, d.webhook_id, e.event_id, e.message_id, e.name, d.state,"
                " d.attempts, d.created_at, d.updated_at,"
                " CASE WHEN d.state = 'pending' THEN d.next_attempt_at END,"
                f" d.last_status, d.last_error FROM deliveries d JOIN events e ON e.id = d.event"
                f" {where} ORDER BY d.id DESC LIMIT ?",
                (*parameters, limit),
            ).fetchall()
            return [DeliveryRecord(*row) for row in rows]

        return await self._read(query)

    async def replay(
        self, delivery_ids: Sequence[int] = (), webhook_id: str | None = None
    ) -> list[str]:
        """Re-queue failed deliveries; returns the webhook id of each one re-queued."""
        now = time.time()

        def update(connection: sqlite3.Connection) -> list[str]:
            if webhook_id is not None:
                selected = connection.execute(
                    "SELECT id, webhook_id FROM deliveries WHERE state = 'failed'"
                    " AND webhook_id = ?", (webhook_id,),
                ).fetchall()
            else:
                selected = [
                    row for delivery_id in delivery_ids
                    for row in connection.execute(
                        "SELECT id, webhook_id FROM deliveries WHERE state = 'failed' AND id = ?",
                        (delivery_id,),
                    ).fetchall()
                ]
            connection.executemany(
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?,"
                " updated_at = ? WHERE id = ?",
                [(now, now, row[0]) for row in selected],
            )
            return [row[1] for row in selected]

        return await self._write(update)

    async def stats(self) -> SpoolStats:
        def query(connection: sqlite3.Connection) -> SpoolStats:
            by_webhook = dict(connection.execute(
                "SELECT webhook_id, COUNT(*) FROM deliveries WHERE state = 'pending'"
                " GROUP BY webhook_id"
            ).fetchall())
            oldest = connection.execute(
                "SELECT MIN(created_at) FROM deliveries WHERE state = 'pending'"
            ).fetchall()[0][0]
            failed = connection.execute(
                "SELECT COUNT(*) FROM deliveries WHERE state = 'failed'"
            ).fetchall()[0][0]
            return SpoolStats(
                sum(by_webhook.values()), failed, oldest, _used_bytes(connection), by_webhook
            )

        return await self._read(query)

    async def prune(self, now: float | None = None) -> int:
        """Forget delivered and dropped rows older than the retention, and their events;
        hand the freed pages back to the file system."""
        cutoff = (now or time.time()) - self.retention

        def update(connection: sqlite3.Connection) -> int:
            removed = connection.execute(
                "DELETE FROM deliveries WHERE state IN ('delivered', 'dropped')"
                " AND updated_at < ?", (cutoff,),
            ).rowcount
            _forget_orphan_events(connection, received_before=cutoff)
            return removed

        removed = await self._write(update)
        if removed:
            await self._maintain(_compact)
        return removed


MIN_SQLITE: Final = (3, 33, 0)


def _check_sqlite() -> None:
    """The spool's statements need UPDATE ... FROM (SQLite 3.33) and the JSON functions
    (built in since 3.38, and in nearly every build before)."""
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise SpoolError(
            f"the spool needs SQLite {'.'.join(map(str, MIN_SQLITE))} or newer; this Python "
            f"uses {sqlite3.sqlite_version}"
        )
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("SELECT json_extract('[1]', '$[0]')").fetchall()
    except sqlite3.OperationalError:
        raise SpoolError(
            f"the spool needs SQLite's JSON functions; this Python's SQLite "
            f"{sqlite3.sqlite_version} was built without them"
        ) from None
    finally:
        probe.close()


def _created(connection: sqlite3.Connection,
             inserted: sqlite3.Cursor) -> dict[str, list[tuple[int, str]]]:
    """The deliveries one INSERT made, as (id, webhook) by event_id, read back in one
    step: the rows of one statement, under the write lock, have consecutive ids ending
    at the last one inserted. Should they not, nothing is returned; the lanes then find
    the deliveries in the spool as they find retries."""
    count, last = inserted.rowcount, inserted.lastrowid
    if count <= 0 or last is None:
        return {}
    rows = json.loads(connection.execute(
        "SELECT json_group_array(json_array(e.event_id, d.id, d.webhook_id))"
        " FROM deliveries d JOIN events e ON e.id = d.event WHERE d.id BETWEEN ? AND ?",
        (last - count + 1, last),
    ).fetchall()[0][0])
    if len(rows) != count:
        return {}
    created: dict[str, list[tuple[int, str]]] = {}
    for event_id, delivery_id, webhook_id in rows:
        created.setdefault(event_id, []).append((delivery_id, webhook_id))
    return created


# Reads use fetchall(): a cursor left open keeps its read transaction, and with it a
# stale WAL snapshot, on the reader connection.
def _due(connection: sqlite3.Connection, webhook_id: str, now: float, limit: int,
         skipped: list[int]) -> list[Delivery]:
    # All rows as one JSON array: one step instead of one per row (see Spool._insert on
    # why the number of steps matters while the event loop is busy).
    # The skipped ids are left out by the query itself: fetching them too, to drop them
    # here, made a busy lane's every query read and parse about twice the rows it kept.
    found = connection.execute(
        "SELECT json_group_array(json_array(id, event_id, message_id, name, payload,"
        " attempts, created_at, next_attempt_at)) FROM (SELECT d.id, e.event_id,"
        " e.message_id, e.name, CAST(e.payload AS TEXT) AS payload, d.attempts,"
        " d.created_at, d.next_attempt_at FROM deliveries d JOIN events e ON e.id = d.event"
        " WHERE d.webhook_id = ? AND d.state = 'pending' AND d.next_attempt_at <= ?"
        " AND d.id NOT IN (SELECT value FROM json_each(?))"
        " ORDER BY d.next_attempt_at, d.id LIMIT ?)",
        (webhook_id, now, json.dumps(skipped), limit),
    ).fetchall()[0][0]
    # SQLite does not promise that an aggregate keeps its subquery's ORDER BY.
    rows = sorted(json.loads(found), key=lambda row: (row[7], row[0]))
    return [
        Delivery(row[0], webhook_id, row[1], row[2], row[3], row[4].encode(), row[5], row[6])
        for row in rows
    ]


def _next_due(connection: sqlite3.Connection, webhook_id: str, after: float) -> float | None:
    """When the webhook's next delivery falls due, counting only those due after `after`
    (the ones due by then are being attempted)."""
    row = connection.execute(
        "SELECT MIN(next_attempt_at) FROM deliveries"
        " WHERE webhook_id = ? AND state = 'pending' AND next_attempt_at > ?",
        (webhook_id, after),
    ).fetchall()[0]
    return None if row[0] is None else float(row[0])


def _used_bytes(connection: sqlite3.Connection) -> int:
    used: int = connection.execute(
        "SELECT (page_count - freelist_count) * page_size"
        " FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()"
    ).fetchall()[0][0]
    return used


def _forget_history(connection: sqlite3.Connection, rows: int) -> int:
    removed = connection.execute(
        "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
        " WHERE state IN ('delivered', 'dropped') ORDER BY updated_at LIMIT ?)", (rows,),
    ).rowcount
    _forget_orphan_events(connection, received_before=math.inf)
    return int(removed)


def _forget_orphan_events(connection: sqlite3.Connection, received_before: float) -> None:
    """Events left without deliveries; a younger one is kept to recognise its event_id
    if a sender posts it again."""
    connection.execute(
        "DELETE FROM events WHERE received_at < ? AND NOT EXISTS"
        " (SELECT 1 FROM deliveries d WHERE d.event = events.id)", (received_before,),
    )


def _compact(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA incremental_vacuum")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


_RECOVER: Final = (
    "mailhooks never replaces a spool by itself: stop the daemon, move the file (and its "
    "-wal and -shm files) aside for inspection, and start again with an empty spool"
)


def _disk_error(error: sqlite3.Error) -> SpoolError:
    text = str(error)
    if "full" in text or "disk" in text.lower():
        return SpoolFull(f"spool cannot grow: {text}")
    return SpoolError(f"spool write failed: {text}")
