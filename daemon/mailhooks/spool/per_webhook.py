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
