"""The spool's SQL: every statement as a function of a connection (the schema and
opening are in `schema.py`).

Functions here run on the spool's threads, never on the event loop. Reads use
fetchall(): a cursor left open keeps its read transaction, and with it a stale WAL
snapshot, on the reader connection.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from typing import Final

from mailhooks.spool.records import (
    Added,
    Delivery,
    DeliveryRecord,
    Intake,
    OutcomeRow,
    SpoolFull,
    SpoolStats,
)

HISTORY_EVICTION_ROWS: Final = 1000
# SQLite allows 32,766 parameters per statement; an event row takes 5.
ROWS_PER_STATEMENT: Final = 5000

# -- intake ------------------------------------------------------------------------------


def insert(connection: sqlite3.Connection, requests: list[Intake], max_bytes: int) -> list[Added]:
    """The events of every request of one commit, inserted together; what each request
    added.

    A constant number of statements whatever the number of events: SQLite releases the
    GIL around every step, and taking it back while the event loop is busy can cost a
    whole switch interval (5 ms), so a statement per row would make a commit of 64
    events take hundreds of milliseconds under load.
    """
    make_room(connection, max_bytes)
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
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start:start + ROWS_PER_STATEMENT]
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


def make_room(connection: sqlite3.Connection, max_bytes: int) -> None:
    """Refuse intake at `max_bytes`, after making room if history is what fills it.

    The limit counts the pages in use, not the file: pages freed by pruning are reused
    before the file grows. Delivered and dropped rows are history: under pressure they
    go, oldest first, before their retention is up, because accepting events matters
    more than remembering old ones.
    """
    used = used_bytes(connection)
    while used >= max_bytes:
        removed = forget_history(connection, HISTORY_EVICTION_ROWS)
        if not removed:
            raise SpoolFull(f"spool is full ({used} of {max_bytes} bytes in use)")
        used = used_bytes(connection)


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


# -- attempts -----------------------------------------------------------------------------


def record(connection: sqlite3.Connection, rows: list[OutcomeRow]) -> None:
    """Attempt outcomes: plain updates that cannot conflict, one statement for all of
    them (see `insert` on why)."""
    connection.execute(
        "UPDATE deliveries SET state = json_extract(r.value, '$[0]'),"
        " attempts = json_extract(r.value, '$[1]'),"
        " next_attempt_at = json_extract(r.value, '$[2]'),"
        " last_status = json_extract(r.value, '$[3]'),"
        " last_error = json_extract(r.value, '$[4]'),"
        " updated_at = json_extract(r.value, '$[5]'),"
        " batch = coalesce(json_extract(r.value, '$[7]'), deliveries.batch)"
        " FROM json_each(?) AS r"
        " WHERE deliveries.id = json_extract(r.value, '$[6]')"
        " AND deliveries.state = 'pending'",
        (json.dumps(rows),),
    )


_DUE_COLUMNS: Final = (
    "json_group_array(json_array(id, event_id, message_id, name, payload, attempts,"
    " created_at, next_attempt_at, batch)) FROM (SELECT d.id, e.event_id, e.message_id,"
    " e.name, CAST(e.payload AS TEXT) AS payload, d.attempts, d.created_at,"
    " d.next_attempt_at, d.batch FROM deliveries d JOIN events e ON e.id = d.event"
)


def _deliveries(webhook_id: str, found: str) -> list[Delivery]:
    # SQLite does not promise that an aggregate keeps its subquery's ORDER BY.
    rows = sorted(json.loads(found), key=lambda row: (row[7], row[0]))
    return [
        Delivery(row[0], webhook_id, row[1], row[2], row[3], row[4].encode(), row[5], row[6], row[8])
        for row in rows
    ]


def due_batch(connection: sqlite3.Connection, webhook_id: str, now: float, limit: int,
              skipped: list[int]) -> list[Delivery]:
    """A batch to send: the members of a failed batch whose retry is due, whole and on
    their own (same members, same webhook-id); else up to `limit` due deliveries that
    belong to no batch yet."""
    first = connection.execute(
        "SELECT batch FROM deliveries WHERE webhook_id = ? AND state = 'pending'"
        " AND next_attempt_at <= ? AND id NOT IN (SELECT value FROM json_each(?))"
        " ORDER BY next_attempt_at, id LIMIT 1",
        (webhook_id, now, json.dumps(skipped)),
    ).fetchall()
    if not first:
        return []
    if first[0][0] is not None:
        found = connection.execute(
            f"SELECT {_DUE_COLUMNS} WHERE d.webhook_id = ? AND d.state = 'pending'"
            " AND d.batch = ? ORDER BY d.id)", (webhook_id, first[0][0]),
        ).fetchall()[0][0]
        return _deliveries(webhook_id, found)
    found = connection.execute(
        f"SELECT {_DUE_COLUMNS} WHERE d.webhook_id = ? AND d.state = 'pending'"
        " AND d.next_attempt_at <= ? AND d.batch IS NULL"
        " AND d.id NOT IN (SELECT value FROM json_each(?))"
        " ORDER BY d.next_attempt_at, d.id LIMIT ?)",
        (webhook_id, now, json.dumps(skipped), limit),
    ).fetchall()[0][0]
    return _deliveries(webhook_id, found)


def due(connection: sqlite3.Connection, webhook_id: str, now: float, limit: int,
        skipped: list[int]) -> list[Delivery]:
    """Up to `limit` of the webhook's deliveries due at `now`, oldest first, leaving out
    the ids in `skipped`."""
    # All rows as one JSON array: one step instead of one per row (see `insert` on why
    # the number of steps matters while the event loop is busy). The skipped ids are
    # left out by the query itself: fetching them too, to drop them here, made a busy
    # lane's every query read and parse about twice the rows it kept.
    found = connection.execute(
        f"SELECT {_DUE_COLUMNS} WHERE d.webhook_id = ? AND d.state = 'pending'"
        " AND d.next_attempt_at <= ? AND d.id NOT IN (SELECT value FROM json_each(?))"
        " ORDER BY d.next_attempt_at, d.id LIMIT ?)",
        (webhook_id, now, json.dumps(skipped), limit),
    ).fetchall()[0][0]
    return _deliveries(webhook_id, found)


def next_due(connection: sqlite3.Connection, webhook_id: str, after: float) -> float | None:
    """When the webhook's next delivery falls due, counting only those due after `after`
    (the ones due by then are being attempted)."""
    row = connection.execute(
        "SELECT MIN(next_attempt_at) FROM deliveries"
        " WHERE webhook_id = ? AND state = 'pending' AND next_attempt_at > ?",
        (webhook_id, after),
    ).fetchall()[0]
    return None if row[0] is None else float(row[0])


def pending_webhooks(connection: sqlite3.Connection) -> dict[str, float]:
    rows = connection.execute(
        "SELECT webhook_id, MIN(next_attempt_at) FROM deliveries"
        " WHERE state = 'pending' GROUP BY webhook_id"
    ).fetchall()
    return {webhook: float(due_at) for webhook, due_at in rows}


def drop_webhook(connection: sqlite3.Connection, webhook_id: str, now: float) -> int:
    return int(connection.execute(
        "UPDATE deliveries SET state = 'dropped', updated_at = ?,"
        " last_error = 'webhook deleted' WHERE webhook_id = ? AND state = 'pending'",
        (now, webhook_id),
    ).rowcount)


# -- operators ----------------------------------------------------------------------------


def deliveries(connection: sqlite3.Connection, state: str | None, webhook_id: str | None,
               limit: int) -> list[DeliveryRecord]:
    clauses, parameters = [], []
    if state:
        clauses.append("d.state = ?")
        parameters.append(state)
    if webhook_id:
        clauses.append("d.webhook_id = ?")
        parameters.append(webhook_id)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = connection.execute(
        "SELECT d.id, d.webhook_id, e.event_id, e.message_id, e.name, d.state,"
        " d.attempts, d.created_at, d.updated_at,"
        " CASE WHEN d.state = 'pending' THEN d.next_attempt_at END,"
        f" d.last_status, d.last_error FROM deliveries d JOIN events e ON e.id = d.event"
        f" {where} ORDER BY d.id DESC LIMIT ?",
        (*parameters, limit),
    ).fetchall()
    return [DeliveryRecord(*row) for row in rows]


def replay(connection: sqlite3.Connection, delivery_ids: Sequence[int], webhook_id: str | None,
           now: float, caps: dict[str, int], default_cap: int,
           pending_now: bool = False) -> tuple[list[str], int]:
    """Re-queue failed deliveries, each webhook's oldest first and no more than the room
    under its cap of pending ones (`caps`, else `default_cap`): re-queued past it, they
    would be the oldest pending, the first the next share sweep fails again. With
    `pending_now`, also make the webhook's pending ones due now (a far `Retry-After` or
    a long backoff cut short). The webhook id of each one re-queued, and how many
    failed ones were left failed for want of room."""
    hurried: list[str] = []
    if pending_now and webhook_id is not None:
        hurried = [webhook_id] * connection.execute(
            "UPDATE deliveries SET next_attempt_at = ?, updated_at = ? WHERE webhook_id = ?"
            " AND state = 'pending' AND next_attempt_at > ?", (now, now, webhook_id, now),
        ).rowcount
    if webhook_id is not None:
        selected = connection.execute(
            "SELECT id, webhook_id FROM deliveries WHERE state = 'failed' AND webhook_id = ?"
            " ORDER BY id", (webhook_id,),
        ).fetchall()
    else:
        selected = connection.execute(
            "SELECT id, webhook_id FROM deliveries WHERE state = 'failed'"
            " AND id IN (SELECT value FROM json_each(?)) ORDER BY id",
            (json.dumps(list(delivery_ids)),),
        ).fetchall()
    waiting = dict(connection.execute(
        "SELECT webhook_id, COUNT(*) FROM deliveries WHERE state = 'pending'"
        " AND webhook_id IN (SELECT value FROM json_each(?)) GROUP BY webhook_id",
        (json.dumps(sorted({row[1] for row in selected})),),
    ).fetchall())
    room = {hook: max(0, caps.get(hook, default_cap) - waiting.get(hook, 0))
            for hook in {row[1] for row in selected}}
    requeued = []
    for row in selected:  # oldest first: a webhook's room goes to its oldest
        if room[row[1]] > 0:
            room[row[1]] -= 1
            requeued.append(row)
    # A replay is a new delivery as far as batches go: sent in a new batch, under a new id.
    connection.executemany(
        "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?,"
        " updated_at = ?, batch = NULL WHERE id = ?",
        [(now, now, row[0]) for row in requeued],
    )
    return [row[1] for row in requeued] + hurried, len(selected) - len(requeued)


def stats(connection: sqlite3.Connection) -> SpoolStats:
    by_webhook = dict(connection.execute(
        "SELECT webhook_id, COUNT(*) FROM deliveries WHERE state = 'pending' GROUP BY webhook_id"
    ).fetchall())
    oldest = connection.execute(
        "SELECT MIN(created_at) FROM deliveries WHERE state = 'pending'"
    ).fetchall()[0][0]
    failed = connection.execute(
        "SELECT COUNT(*) FROM deliveries WHERE state = 'failed'"
    ).fetchall()[0][0]
    return SpoolStats(sum(by_webhook.values()), failed, oldest, used_bytes(connection), by_webhook)


# -- housekeeping ---------------------------------------------------------------------------


def prune(connection: sqlite3.Connection, cutoff: float) -> int:
    """Forget delivered and dropped rows updated before `cutoff`, and their events."""
    removed = connection.execute(
        "DELETE FROM deliveries WHERE state IN ('delivered', 'dropped') AND updated_at < ?",
        (cutoff,),
    ).rowcount
    forget_orphan_events(connection, received_before=cutoff)
    return int(removed)


def used_bytes(connection: sqlite3.Connection) -> int:
    used: int = connection.execute(
        "SELECT (page_count - freelist_count) * page_size"
        " FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()"
    ).fetchall()[0][0]
    return used


def forget_history(connection: sqlite3.Connection, rows: int) -> int:
    removed = connection.execute(
        "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
        " WHERE state IN ('delivered', 'dropped') ORDER BY updated_at LIMIT ?)", (rows,),
    ).rowcount
    forget_orphan_events(connection, received_before=math.inf)
    return int(removed)


def forget_orphan_events(connection: sqlite3.Connection, received_before: float) -> None:
    """Events left without deliveries; a younger one is kept to recognise its event_id
    if a sender posts it again."""
    connection.execute(
        "DELETE FROM events WHERE received_at < ? AND NOT EXISTS"
        " (SELECT 1 FROM deliveries d WHERE d.event = events.id)", (received_before,),
    )


def compact(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA incremental_vacuum")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
