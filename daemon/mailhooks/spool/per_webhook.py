"""What the spool keeps per webhook: no more than its share of the rows (SPEC §5), and
the daemon's decisions about it (failing since, paused), across restarts."""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Final

from mailhooks.spool.records import ShareOutcome, WebhookState
from mailhooks.spool.sql import forget_orphan_events, used_bytes

OVER_SHARE: Final = "over the webhook's share of the spool: its oldest pending deliveries fail first"
# What a delivery's row and index entries cost beside its event's payload, in bytes:
# which webhook holds the most failed bytes is judged with it.
ROW_BYTES: Final = 200
# Failed rows evicted per statement to make room for intake: enough that the next
# requests fit too, few enough that intake's commit is not held up.
EVICT_AT_LEAST: Final = 16
EVICT_AT_MOST: Final = 2000


def keep_within(connection: sqlite3.Connection, caps: dict[str, int], default_cap: int,
                claimed: list[int], now: float, at_most: int | None = None) -> dict[str, ShareOutcome]:
    """Each webhook's pending deliveries at most its cap (rows): past it, the oldest
    pending ones fail (kept, replayable); and its failed ones at most the same cap: past
    it, the oldest failed ones go (evicted)."""
    pending = dict(connection.execute(
        "SELECT webhook_id, COUNT(*) FROM deliveries WHERE state = 'pending' GROUP BY webhook_id"
    ).fetchall())
    failed = dict(connection.execute(
        "SELECT webhook_id, COUNT(*) FROM deliveries WHERE state = 'failed' GROUP BY webhook_id"
    ).fetchall())
    done: dict[str, ShareOutcome] = {}
    for webhook_id in sorted(set(pending) | set(failed)):
        cap = caps.get(webhook_id, default_cap)
        waiting, kept = pending.get(webhook_id, 0), failed.get(webhook_id, 0)
        if waiting <= cap and kept <= cap:
            continue
        to_fail = max(0, waiting - cap)
        if at_most is not None:  # a commit short enough not to hold intake up
            to_fail = min(to_fail, at_most)
        if to_fail:
            to_fail = connection.execute(
                "UPDATE deliveries SET state = 'failed', updated_at = ?, last_error = ?"
                " WHERE id IN (SELECT id FROM deliveries WHERE webhook_id = ? AND state = 'pending'"
                " AND id NOT IN (SELECT value FROM json_each(?)) ORDER BY id LIMIT ?)",
                (now, OVER_SHARE, webhook_id, json.dumps(claimed), to_fail),
            ).rowcount
        excess = kept + to_fail - cap
        if at_most is not None:
            excess = min(excess, at_most)
        evicted = 0
        if excess > 0:
            evicted = connection.execute(
                "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
                " WHERE webhook_id = ? AND state = 'failed' ORDER BY updated_at, id LIMIT ?)",
                (webhook_id, excess),
            ).rowcount
        if to_fail or evicted:
            done[webhook_id] = ShareOutcome(to_fail, evicted)
    if any(outcome.evicted for outcome in done.values()):
        forget_orphan_events(connection, received_before=math.inf)
    return done


def evict_failed(connection: sqlite3.Connection, below: int) -> dict[str, int]:
    """Room for intake in a full spool (SPEC §5): failed deliveries go, the oldest first,
    from the webhooks holding the most failed bytes first, until fewer than `below`
    bytes are in use (or none is left); how many went, by webhook. Pending deliveries
    within their shares are what the spool must keep; failed ones are not."""
    used = used_bytes(connection)
    if used < below:
        return {}
    held: dict[str, list[float]] = {  # bytes of failed deliveries (payload and row), rows
        webhook_id: [size, rows] for webhook_id, size, rows in connection.execute(
            "SELECT d.webhook_id, SUM(length(e.payload)) + COUNT(*) * ?, COUNT(*)"
            " FROM deliveries d JOIN events e ON e.id = d.event WHERE d.state = 'failed'"
            " GROUP BY d.webhook_id", (ROW_BYTES,),
        ).fetchall()
    }
    per_row = bytes_per_delivery(connection)
    evicted: dict[str, int] = {}
    while held and used >= below:
        ranked = sorted(held, key=lambda webhook_id: held[webhook_id][0], reverse=True)
        top = ranked[0]
        size, rows = held[top]
        # As many rows as the room needs, but no further than the next holder's level
        # (then the next round takes from both): the biggest holder gives first.
        needed = math.ceil((used - below + 1) / per_row)
        if len(ranked) > 1:
            needed = min(needed, math.ceil((size - held[ranked[1]][0]) / (size / rows)))
        limit = int(min(max(needed, EVICT_AT_LEAST), EVICT_AT_MOST, rows))
        gone = connection.execute(
            "SELECT d.id, d.event, length(e.payload) FROM deliveries d JOIN events e"
            " ON e.id = d.event WHERE d.webhook_id = ? AND d.state = 'failed'"
            " ORDER BY d.id LIMIT ?", (top, limit),
        ).fetchall()
        connection.execute("DELETE FROM deliveries WHERE id IN (SELECT value FROM json_each(?))",
                           (json.dumps([row[0] for row in gone]),))
        connection.execute(
            "DELETE FROM events WHERE id IN (SELECT value FROM json_each(?)) AND NOT EXISTS"
            " (SELECT 1 FROM deliveries d WHERE d.event = events.id)",
            (json.dumps([row[1] for row in gone]),),
        )
        evicted[top] = evicted.get(top, 0) + len(gone)
        size -= sum(row[2] for row in gone) + ROW_BYTES * len(gone)
        if len(gone) < limit or rows <= len(gone):
            del held[top]
        else:
            held[top] = [size, rows - len(gone)]
        used = used_bytes(connection)
    return {webhook_id: count for webhook_id, count in evicted.items() if count}


def bytes_per_delivery(connection: sqlite3.Connection) -> float:
    """What a kept delivery costs the spool, in bytes: what a webhook's share of
    `spool.max_bytes` is counted in. A delivery can pin its event alone (the others'
    deliveries of it delivered and gone), so each is counted as an event and its
    delivery: the bytes in use per event, indexes and history included. Cautious where
    events fan out to several webhooks."""
    rows: int = connection.execute("SELECT COUNT(*) FROM events").fetchall()[0][0]
    return used_bytes(connection) / max(rows, 1)


def webhook_states(connection: sqlite3.Connection) -> dict[str, WebhookState]:
    return {
        row[0]: WebhookState(row[1], row[2], row[3])
        for row in connection.execute(
            "SELECT id, failing_since, paused_at, paused_digest FROM webhooks"
        ).fetchall()
    }


def save_webhook_state(connection: sqlite3.Connection, webhook_id: str, state: WebhookState) -> None:
    if state == WebhookState():
        connection.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
        return
    connection.execute(
        "INSERT INTO webhooks (id, failing_since, paused_at, paused_digest) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET failing_since = excluded.failing_since,"
        " paused_at = excluded.paused_at, paused_digest = excluded.paused_digest",
        (webhook_id, state.failing_since, state.paused_at, state.paused_digest),
    )
