"""Endpoints that fail in every way an HTTP server can: each event still reaches every
endpoint that eventually answers 2xx, a healthy endpoint beside them is served promptly,
and the circuit breaker opens on a dead endpoint and closes when it comes back."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field

from aiohttp import web

from tests.reliability.conftest import closed_port, deliveries, log_lines, percentile
from tests.utils import DaemonProcess, Receiver, event, wait_until

EVENTS = 40
TIMEOUT = 0.5  # the hanging endpoint's webhook timeout
SHORT = [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def _event_id(body: bytes) -> str:
    value = json.loads(body)
    return str(value["event_id"])


@dataclass
class RawServer:
    """A raw HTTP/1.1 server: for each event the first request is cut (the connection
    closed before any answer, or after half an answer), the next one answered 200."""

    ok: set[str] = field(default_factory=set)
    cuts: dict[str, int] = field(default_factory=dict)
    server: asyncio.Server | None = None
    port: int = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            body = await reader.readexactly(length)
            event_id = _event_id(body)
            cut = self.cuts.get(event_id, 0)
            self.cuts[event_id] = cut + 1
            if cut == 0 and int(event_id[1:]) % 2 == 0:
                return  # read the request, close without a word
            if cut == 0:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf an ans")
                await writer.drain()
                return  # and close mid-body
            self.ok.add(event_id)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, StopIteration):
            pass
        finally:
            writer.close()

    async def start(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


async def test_faulty_endpoints_get_everything_and_never_delay_a_healthy_one(
    daemon: DaemonProcess,
) -> None:
    rng = random.Random(7)
    succeeded: dict[str, set[str]] = {name: set() for name in ("flaky", "hang", "limited")}
    seen: dict[str, set[str]] = {"hang": set(), "limited": set()}
    limited_at: dict[str, list[float]] = {}

    async def flaky(_r: Receiver, request: web.Request) -> web.Response:
        if rng.random() < 0.3:
            return web.Response(status=500)
        succeeded["flaky"].add(_event_id(await request.read()))
        return web.Response(status=200)

    async def hang_first(_r: Receiver, request: web.Request) -> web.Response:
        event_id = _event_id(await request.read())
        if event_id not in seen["hang"] and int(event_id[1:]) % 3 == 0:
            seen["hang"].add(event_id)
            await asyncio.sleep(TIMEOUT * 6)  # far past the webhook's timeout
        succeeded["hang"].add(event_id)
        return web.Response(status=200)

    async def limited_first(_r: Receiver, request: web.Request) -> web.Response:
        event_id = _event_id(await request.read())
        limited_at.setdefault(event_id, []).append(time.monotonic())
        if event_id not in seen["limited"] and int(event_id[1:]) % 3 == 0:
            seen["limited"].add(event_id)
            return web.Response(status=429, headers={"Retry-After": "1"})
        succeeded["limited"].add(event_id)
        return web.Response(status=200)

    async def redirect(_r: Receiver, _request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": f"{healthy.url}-redirected"})

    healthy = await Receiver().start()
    servers = [await Receiver(handler=handler).start()
               for handler in (flaky, hang_first, limited_first, redirect)]
    flaky_server, hang_server, limited_server, redirect_server = servers
    raw = await RawServer().start()
    dead_port = closed_port()
    revived: Receiver | None = None
    try:
        daemon.add_webhook("healthy", healthy.url, channel={"retry_schedule": SHORT})
        daemon.add_webhook("flaky", flaky_server.url, channel={"retry_schedule": SHORT})
        daemon.add_webhook("hang", hang_server.url,
                           channel={"retry_schedule": SHORT, "timeout": TIMEOUT})
        daemon.add_webhook("limited", limited_server.url, channel={"retry_schedule": SHORT})
        daemon.add_webhook("cut", f"http://127.0.0.1:{raw.port}/hook",
                           channel={"retry_schedule": SHORT})
        daemon.add_webhook("redirect", redirect_server.url,
                           channel={"retry_schedule": [0.05, 0.1]})
        daemon.add_webhook("dead", f"http://127.0.0.1:{dead_port}/hook",
                           channel={"retry_schedule": [0.05, 0.1, 0.2] + [1.0] * 45})
        await daemon.start()

        accepted_at: dict[str, float] = {}
        for number in range(EVENTS):
            status, _ = await daemon.post(event(number))
            assert status == 202
            accepted_at[f"e{number}"] = time.time()
            if number == EVENTS // 2:
                # Half way: the dead endpoint has failed often enough to open its breaker.
                await wait_until(lambda: bool(log_lines(daemon, "circuit_opened", webhook="dead")),
                                 15, "the breaker to open on the dead endpoint")
                revived = await Receiver(port=dead_port).start()
            await asyncio.sleep(0.05)  # a steady trickle of events, not one burst

        ids = set(accepted_at)
        await wait_until(lambda: {r.json()["event_id"] for r in healthy.requests} == ids,
                         10, "every event at the healthy endpoint")
        await wait_until(lambda: all(done == ids for done in succeeded.values()),
                         30, "every event answered 2xx by the flaky, hanging and 429 endpoints")
        await wait_until(lambda: raw.ok == ids, 30, "every event at the cutting endpoint")
        await wait_until(lambda: bool(log_lines(daemon, "circuit_closed", webhook="dead")),
                         40, "the breaker to close once the dead endpoint is back")
        assert revived is not None
        await wait_until(lambda: {r.json()["event_id"] for r in revived.requests} >= ids,
                         30, "every event at the revived endpoint")

        # The healthy endpoint was served promptly all along.
        latencies = [
            max(0.0, request.at - accepted_at[request.json()["event_id"]])
            for request in healthy.requests
        ]
        assert len(healthy.requests) == EVENTS, "the healthy endpoint got a retry or a duplicate"
        assert percentile(latencies, 0.99) < 1.0, sorted(latencies)[-5:]

        # Retry-After: 1 was honoured.
        for times in limited_at.values():
            if len(times) > 1:
                assert times[1] - times[0] >= 0.95, times
        # Redirects are failures and are never followed.
        assert redirect_server.requests
        assert not [r for r in healthy.requests if r.path.endswith("-redirected")]
        redirect_errors = [line.get("error") or "" for line in
                           log_lines(daemon, "delivery_attempt", webhook="redirect")]
        assert redirect_errors and all("redirect" in error for error in redirect_errors)
        assert not await deliveries(daemon, webhook="redirect", state="delivered")
        # The cut connections and the timeouts were seen as what they were.
        errors = " | ".join(str(line.get("error")) for line in log_lines(daemon, "delivery_attempt"))
        assert "timed out" in errors
        assert "closed the connection" in errors or "broke" in errors
        assert "connection refused" in errors
    finally:
        for server in (healthy, *servers, *([revived] if revived else [])):
            await server.stop()
        await raw.stop()


async def test_a_burst_of_failures_opens_the_breaker_once_with_a_10s_probe(
    daemon: DaemonProcess,
) -> None:
    """README: after 5 consecutive failures the lane waits 10 s, then lets one probe
    through; only a failed probe doubles the wait. A burst of 8 attempts in flight that
    all fail is one outage, not four failed probes."""
    port = closed_port()
    daemon.add_webhook("dead", f"http://127.0.0.1:{port}/hook",
                       channel={"retry_schedule": [0.05] + [1.0] * 40})
    await daemon.start()
    status, _ = await daemon.post([event(number) for number in range(16)])
    assert status == 202
    await wait_until(lambda: bool(log_lines(daemon, "circuit_opened", webhook="dead")),
                     10, "the breaker to open")
    revived = await Receiver(port=port).start()
    try:
        # Let every attempt that was in flight when the breaker opened come back.
        async def quiet() -> bool:
            _, report = await daemon.request("GET", "/status")
            return bool(report["queue"]["in_flight"] == 0)

        await wait_until(quiet, 10, "the first attempts to settle")
        opened = log_lines(daemon, "circuit_opened", webhook="dead")
        assert [line["probe_in"] for line in opened] == [10.0], opened
        await wait_until(lambda: bool(log_lines(daemon, "circuit_closed", webhook="dead")),
                         20, "the first probe, 10 s after the breaker opened, to close it")
        await wait_until(lambda: len({r.json()["event_id"] for r in revived.requests}) == 16,
                         10, "every event once the breaker closed")
    finally:
        await revived.stop()
