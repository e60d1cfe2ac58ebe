"""Intake: events/s answered 202 by `POST /events` on the UNIX socket.

- one event per POST, 64 concurrent keep-alive clients, against a bare aiohttp server
  (same socket setup, same generator) that reads the body and answers 202;
- 100 events per POST (NDJSON), 16 clients, against bare SQLite batched inserts (WAL,
  synchronous=FULL, one transaction per 100 events, rows shaped like the spool's).

The daemon has one webhook matching every event, so each event also writes a deliveries
row. It points at a black hole (a port that accepts connections and never answers, with a
300 s timeout): its lane holds 8 requests in flight and every other delivery stays pending,
so the delivery side does not compete with intake for the CPU.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

from benchmarks.harness import (
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
from mailhooks.spool import _SCHEMA

SQLITE_BATCH = 100


async def _post(socket: Path, seconds: float, concurrency: int, per_post: int,
                pid: int) -> tuple[float, dict[str, object]]:
    cpu = cpu_seconds(pid)
    report = await loadgen("post", str(socket), "--concurrency", str(concurrency),
                           "--seconds", str(seconds), "--per-post", str(per_post))
    report["server_cpu_percent"] = round((cpu_seconds(pid) - cpu) / (seconds + 1) * 100)
    return float(report["events_per_s"]), report  # type: ignore[arg-type]


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
    seconds = scale.pick(8.0, 3.0)
    rows = []
    with scratch() as root, black_hole() as void:
        hook = web_webhook(void, timeout=300, retry_schedule=[3600])
        async with running_daemon(root / "d1", webhooks={"void": hook}) as daemon:
            daemon_rate, daemon_report = await _post(daemon.socket, seconds, 64, 1, daemon.pid)
        async with bare_server(root) as (socket, pid):
            bare_rate, bare_report = await _post(socket, seconds, 64, 1, pid)
        ratio = daemon_rate / bare_rate
        rows.append(Row(
            "intake, 1 event/POST, 64 clients", rate_text(daemon_rate),
            f"bare aiohttp {rate_text(bare_rate)}", ratio_text(ratio), "≥ 0.60× bare",
            ratio >= 0.60, {"daemon": daemon_report, "bare": bare_report},
        ))

        async with running_daemon(root / "d2", webhooks={"void": hook}) as daemon:
            ndjson_rate, ndjson_report = await _post(daemon.socket, seconds, 16, 100, daemon.pid)
        sqlite_rate = bare_sqlite(root / "bare.db", seconds)
        ratio = ndjson_rate / sqlite_rate
        rows.append(Row(
            "intake, 100 events/POST (NDJSON), spooled", rate_text(ndjson_rate),
            f"bare SQLite {rate_text(sqlite_rate)}", ratio_text(ratio),
            "≥ 100,000/s and ≥ 0.50× SQLite", ndjson_rate >= 100_000 and ratio >= 0.5,
            {"daemon": ndjson_report, "sqlite_events_per_s": sqlite_rate},
        ))
    return rows
