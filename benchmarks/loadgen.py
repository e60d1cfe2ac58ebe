"""The load generator, run in its own process so it never shares a core's time slice with
what it measures. Prints one JSON report on stdout.

    python -m benchmarks.loadgen post SOCKET [--concurrency 64] [--seconds 5] [--per-post 1]
                                 [--rate R] [--ids PREFIX] [--fields JSON] [--record]
                                 [--kumomta | --kumomta-events]
    python -m benchmarks.loadgen client URL [--concurrency 8] [--count N] [--rate R --seconds T]

`post` speaks HTTP/1.1 by hand over `asyncio.open_unix_connection` with keep-alive: a
tight loop per connection, far cheaper than a full client, so the server is the
bottleneck. The same generator measures the daemon and the bare server. `client` is a bare
aiohttp client (the baseline for delivery): POST a ~300-byte JSON body to a receiver.
`--kumomta` posts KumoMTA Delivery log records (a JSON array of `--per-post`, each with
an id of its own) to `/sources/kumomta` instead of events to `/events`; `--kumomta-events`
posts, as NDJSON to `/events`, the very events the route makes of those records.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from benchmarks.harness import event


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _request(body: bytes, content_type: str, path: bytes = b"/events") -> bytes:
    return (
        b"POST " + path + b" HTTP/1.1\r\nHost: mailhooks\r\nContent-Type: " + content_type.encode()
        + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


async def _answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
            break
    if length:
        await reader.readexactly(length)
    return status


def kumomta_record(key: str) -> dict[str, Any]:
    """A Delivery record as KumoMTA's log hook posts it (about 1 KB of JSON), `key` making
    its id, recipient and Message-ID its own."""
    return {
        "type": "Delivery", "id": f"spool-{key}", "sender": "bounces@mail.example.com",
        "recipient": f"r{key}@example.org", "queue": "spring-sale:acme@example.org",
        "site": "source2->(alt1|alt2)?.gmail-smtp-in.l.google.com", "size": 1047,
        "response": {"code": 250, "enhanced_code": {"class": 2, "subject": 0, "detail": 0},
                     "content": "OK ids=8a5475ccbbc611eda12250ebf67f93bd", "command": "."},
        "peer_address": {"name": "gmail-smtp-in.l.google.com.", "addr": "142.251.2.27"},
        "timestamp": 1717430400, "created": 1717430395, "num_attempts": 0,
        "bounce_classification": "Uncategorized", "egress_pool": "pool0", "egress_source": "source2",
        "source_address": {"address": "192.0.2.10:53210"}, "feedback_report": None,
        "meta": {"campaign": "spring-sale", "tenant": "acme"},
        "headers": {"Message-ID": f"<{key}@mail.example.com>", "Subject": "Spring sale"},
        "delivery_protocol": "ESMTP", "reception_protocol": "ESMTP",
        "nodeid": "557f3ad4-2c8c-11ee-976e-782d7e12e173", "tls_cipher": "TLS_AES_256_GCM_SHA384",
        "tls_protocol_version": "TLSv1.3", "session_id": "9bcd689e-23d9-41b7-a015-63a1382f8b57",
    }


class KumoEvents:
    """The events `POST /sources/kumomta` makes of `kumomta_record(key)`: the route's own
    event for one record, with what differs from record to record put in (the recipient,
    the Message-ID, the spool id, the event id). Checked against the route's parser at
    start, so the NDJSON side posts what the route would spool, byte for byte; and no
    dearer to build than the records, so the generator's share of the CPU does not favour
    the route."""

    def __init__(self) -> None:
        from mailhooks.sources import kumomta
        from mailhooks.sources.ids import derive_event_id

        self.derive = derive_event_id
        record = kumomta_record("template")
        [self.template] = kumomta.parse_records(record).events
        response = record["response"]
        # kumomta.py's identity of a record, but for its id and recipient.
        self.identity = (record["timestamp"], record["num_attempts"], response["code"], "2.0.0",
                         response["content"], record["session_id"])
        for key in ("check-1", "check-2"):
            if self.event(key) != kumomta.parse_records(kumomta_record(key)).events[0]:
                raise RuntimeError("KumoEvents no longer builds what the route makes of a record")

    def event(self, key: str) -> dict[str, Any]:
        spool_id, recipient = f"spool-{key}", f"r{key}@example.org"  # as kumomta_record's
        return {
            **self.template, "email": recipient, "message_id": f"<{key}@mail.example.com>",
            "metadata": {**self.template["metadata"], "id": spool_id},
            "event_id": self.derive("kumomta", "Delivery", spool_id, recipient, recipient, *self.identity),
        }


class Post:
    def __init__(self, options: argparse.Namespace) -> None:
        self.o = options
        self.fields: dict[str, Any] = json.loads(options.fields) if options.fields else {}
        self.ndjson = options.per_post > 1
        self.number = 0
        self.statuses: dict[int, int] = {}
        self.window_events = 0
        self.window_requests = 0
        self.latencies: list[float] = []
        self.acked: list[str] = []
        self.acks: dict[str, float] = {}
        self.fixed: bytes | None = None
        self.kumomta_events = KumoEvents() if options.kumomta_events else None
        if not options.ids and not options.nodes and not options.kumomta and not options.kumomta_events:
            self.fixed = self._build([])

    def _build(self, ids: list[str]) -> bytes:
        if self.o.kumomta or self.kumomta_events is not None:
            # Each record its own (the daemon takes a record it knows as a duplicate): the
            # --ids prefix keeps the rounds of a run apart.
            keys = [f"{self.o.ids}{self.number + index}" for index in range(self.o.per_post)]
            self.number += self.o.per_post
            if self.kumomta_events is not None:
                body = b"".join(json.dumps(self.kumomta_events.event(key)).encode() + b"\n" for key in keys)
                return _request(body, "application/x-ndjson")
            records = [kumomta_record(key) for key in keys]
            return _request(json.dumps(records).encode(), "application/json", b"/sources/kumomta")
        events = []
        for index in range(self.o.per_post):
            item = event(self.number + index, **self.fields)
            if self.o.nodes:
                item["sending_node"] = f"node-{(self.number + index) % self.o.nodes}"
            if ids:
                item["event_id"] = ids[index]
            events.append(item)
        self.number += self.o.per_post
        if self.ndjson:
            body = b"".join(json.dumps(item).encode() + b"\n" for item in events)
            return _request(body, "application/x-ndjson")
        return _request(json.dumps(events[0]).encode(), "application/json")

    def next_request(self) -> tuple[bytes, list[str]]:
        if self.fixed is not None:
            return self.fixed, []
        if self.o.kumomta or self.kumomta_events is not None:
            return self._build([]), []
        ids = [f"{self.o.ids}{self.number + index}" for index in range(self.o.per_post)] if self.o.ids else []
        return self._build(ids), ids

    async def connection(self, queue: asyncio.Queue[None] | None, window: tuple[float, float]) -> None:
        reader, writer = await asyncio.open_unix_connection(self.o.target)
        try:
            while time.monotonic() < window[1]:
                if queue is not None:
                    await queue.get()
                    if time.monotonic() >= window[1]:
                        break
                request, ids = self.next_request()
                started = time.monotonic()
                writer.write(request)
                status = await _answer(reader)
                now = time.monotonic()
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if 200 <= status < 300:
                    if window[0] <= started and now <= window[1]:
                        self.window_events += self.o.per_post
                        self.window_requests += 1
                    if queue is not None:
                        self.latencies.append(now - started)
                    if ids:
                        self.acked.extend(ids)
                        if self.o.record:
                            for item in ids:
                                self.acks[item] = now
        finally:
            writer.close()

    async def pace(self, queue: asyncio.Queue[None], end: float) -> None:
        start = time.monotonic()
        sent = 0
        while time.monotonic() < end:
            due = int((time.monotonic() - start) * self.o.rate / self.o.per_post)
            for _ in range(due - sent):
                queue.put_nowait(None)
            sent = max(sent, due)
            await asyncio.sleep(0.001)
        for _ in range(self.o.concurrency):
            queue.put_nowait(None)

    async def run(self) -> dict[str, Any]:
        start = time.monotonic()
        window = (start + self.o.warmup, start + self.o.warmup + self.o.seconds)
        queue: asyncio.Queue[None] | None = asyncio.Queue() if self.o.rate else None
        tasks = [asyncio.create_task(self.connection(queue, window))
                 for _ in range(self.o.concurrency)]
        if queue is not None:
            tasks.append(asyncio.create_task(self.pace(queue, window[1])))
        await asyncio.gather(*tasks)
        self.latencies.sort()
        report: dict[str, Any] = {
            "seconds": self.o.seconds,
            "events_per_s": self.window_events / self.o.seconds,
            "requests_per_s": self.window_requests / self.o.seconds,
            "statuses": {str(key): value for key, value in sorted(self.statuses.items())},
        }
        if self.latencies:
            report["ack_p50_ms"] = self.latencies[len(self.latencies) // 2] * 1000
            report["ack_p99_ms"] = self.latencies[int(len(self.latencies) * 0.99)] * 1000
        if self.o.ids:
            report["acked"] = self.acked
        if self.o.record:
            report["acks"] = self.acks
        return report


async def client(options: argparse.Namespace) -> dict[str, Any]:
    """A bare aiohttp client POSTing to a receiver: `count` requests as fast as
    `concurrency` allows, or `rate` per second for `seconds`, stamped for latency."""
    import aiohttp

    body = json.dumps(event(1, event_id="00000000-0000-4000-8000-000000000000")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "bench/1", "webhook-id": "x",
               "webhook-timestamp": "1705314600"}
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(extra: dict[str, str] | None = None) -> None:
            async with session.post(options.target, data=body,
                                    headers={**headers, **(extra or {})}) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1

        if options.rate:
            tasks = []
            start = time.monotonic()
            total = int(options.rate * options.seconds)
            for number in range(total):
                delay = start + number / options.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one({"x-sent-at": repr(time.monotonic())})))
            await asyncio.gather(*tasks)
            return {"requests": total, "statuses": statuses}

        remaining = options.count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one()

        await one()  # connect once before the clock starts
        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(options.concurrency)))
        elapsed = time.monotonic() - start
    return {"requests": options.count, "seconds": elapsed,
            "requests_per_s": options.count / elapsed, "statuses": statuses}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen")
    parser.add_argument("mode", choices=["post", "client"])
    parser.add_argument("target", help="UNIX socket (post) or URL (client)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--per-post", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0, help="events per second; 0: flat out")
    parser.add_argument("--ids", default="", help="give each event an event_id with this prefix")
    parser.add_argument("--fields", default="", help="JSON object of event fields to set")
    parser.add_argument("--nodes", type=int, default=0, help="sending_node node-(N mod this)")
    parser.add_argument("--record", action="store_true", help="report when each id was acked")
    parser.add_argument("--kumomta", action="store_true",
                        help="post KumoMTA log records to /sources/kumomta, not events")
    parser.add_argument("--kumomta-events", action="store_true",
                        help="post the events the KumoMTA route makes of those records, as NDJSON")
    parser.add_argument("--count", type=int, default=10000)
    options = parser.parse_args(argv)
    _install_uvloop()
    work = Post(options).run() if options.mode == "post" else client(options)
    report = asyncio.run(work)
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
