"""Intake: events/s answered 202 by `POST /events` on the UNIX socket.

- one event per POST, 64 concurrent keep-alive clients, against a bare aiohttp server
  (same socket setup, same generator) that reads the body and answers 202;
- 100 events per POST (NDJSON), 16 clients, against bare SQLite batched inserts (WAL,
  synchronous=FULL, one transaction per 100 events, rows shaped like the spool's).

The daemon has one webhook matching every event, so each event also writes a deliveries
row. It points at a black hole (a port that accepts connections and never answers, with a
300 s timeout): its lane holds 8 requests in flight and every other delivery stays pending,
so the delivery side does not compete with intake for the CPU.

Each side runs in rounds, alternating with its baseline (`Paired`).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    Paired,
    Row,
    Scale,
    bare_server,
    black_hole,
    cpu_seconds,
    event,
    loadgen,
    rate_text,
    ratio_text,
    running_daemon,
    scratch,
    web_webhook,
)
from mailhooks.spool.schema import SCHEMA as _SCHEMA

SQLITE_BATCH = 100


async def post_load(socket: Path, seconds: float, concurrency: int, per_post: int,
                    pid: int, *extra: str) -> dict[str, Any]:
    """The load generator's report of posting to `socket` (more of its options in
    `extra`), with the CPU the server used meanwhile."""
    cpu = cpu_seconds(pid)
    report = await loadgen("post", str(socket), "--concurrency", str(concurrency),
                           "--seconds", str(seconds), "--per-post", str(per_post), *extra)
    report["server_cpu_percent"] = round((cpu_seconds(pid) - cpu) / (seconds + 1) * 100)
    return report


def bare_sqlite(path: Path, seconds: float) -> float:
    """Events/s into a fresh spool-shaped database, 100 events and 100 deliveries per
    transaction, committed with synchronous=FULL."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")
    connection.executescript(_SCHEMA)
    template = event(0)
    events = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        now = time.time()
        connection.execute("BEGIN IMMEDIATE")
        deliveries = []
        for _ in range(SQLITE_BATCH):
            event_id = str(uuid.uuid4())
            payload = json.dumps({**template, "event_id": event_id}).encode()
            cursor = connection.execute(
                "INSERT OR IGNORE INTO events (event_id, name, message_id, payload, received_at)"
                " VALUES (?, ?, ?, ?, ?)", (event_id, "delivered", template["message_id"], payload, now),
            )
            deliveries.append((cursor.lastrowid, "bench", now, now, now))
        connection.executemany(
            "INSERT INTO deliveries (event, webhook_id, state, next_attempt_at, created_at,"
            " updated_at) VALUES (?, ?, 'pending', ?, ?, ?)", deliveries,
        )
        connection.execute("COMMIT")
        events += SQLITE_BATCH
    elapsed = time.perf_counter() - start
    connection.close()
    return events / elapsed


async def run(scale: Scale) -> list[Row]:
    rounds, seconds = scale.pick((3, 4.0), (2, 2.0))
    rows = []
    with scratch() as root, black_hole() as void:
        hook = web_webhook(void, timeout=300, retry_schedule=[3600])
        reports: dict[str, list[dict[str, Any]]] = {"daemon": [], "bare": []}
        async with running_daemon(root / "d1", webhooks={"void": hook}) as daemon, \
                bare_server(root) as (socket, pid):
            for _ in range(rounds):
                for side, target, target_pid in (("daemon", daemon.socket, daemon.pid),
                                                 ("bare", socket, pid)):
                    reports[side].append(await post_load(target, seconds, 64, 1, target_pid))
        single = Paired([r["events_per_s"] for r in reports["daemon"]],
                        [r["events_per_s"] for r in reports["bare"]])
        rows.append(Row(
            "intake, 1 event/POST, 64 clients", rate_text(single.figure),
            f"bare aiohttp {rate_text(single.limit)}", ratio_text(single.ratio), "≥ 0.60× bare",
            single.ratio >= 0.60, {**single.as_json(), **reports},
        ))

        ndjson_reports: list[dict[str, Any]] = []
        sqlite_rates: list[float] = []
        async with running_daemon(root / "d2", webhooks={"void": hook}) as daemon:
            for _ in range(rounds):
                ndjson_reports.append(await post_load(daemon.socket, seconds, 16, 100, daemon.pid))
                sqlite_rates.append(bare_sqlite(root / "bare.db", seconds))
        ndjson = Paired([r["events_per_s"] for r in ndjson_reports], sqlite_rates)
        rows.append(Row(
            "intake, 100 events/POST (NDJSON), spooled", rate_text(ndjson.figure),
            f"bare SQLite {rate_text(ndjson.limit)}", ratio_text(ndjson.ratio),
            "≥ 100,000/s and ≥ 0.50× SQLite", ndjson.figure >= 100_000 and ndjson.ratio >= 0.5,
            {**ndjson.as_json(), "daemon": ndjson_reports},
        ))
    return rows
