"""Crash loop under load: the daemon is SIGKILLed at random moments while a client posts
events; in the end every acknowledged event reaches every matching webhook, nothing
unacknowledged is ever delivered, and duplicates come only from attempts cut by a kill."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.utils import DaemonProcess, Receiver, event, wait_until

KILLS = 10
CLIENTS = 2
LANE_CONCURRENCY = 8  # dispatch.WEB_CONCURRENCY
WEBHOOKS = ("all", "filtered")
MATCHING_DOMAIN = "match.example.com"
READ_LAG = 0.5  # seconds the receiver may take to read what a killed daemon sent


@dataclass
class Client:
    """Posts batches of unique events, retrying a batch until it gets an answer."""

    daemon: DaemonProcess
    name: str
    stop: asyncio.Event
    rng: random.Random
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)  # posted only in batches answered 400
    retries: int = 0
    counter: int = 0

    def _next_event(self) -> dict[str, Any]:
        self.counter += 1
        number = self.counter
        domain = MATCHING_DOMAIN if number % 3 == 0 else "other.example.com"
        return event(number, event_id=f"{self.name}-{number}", sending_domain=domain)

    async def _post_until_answered(self, batch: list[dict[str, Any]]) -> int:
        """The same batch again after connection errors and 503s; the final answer's status.
        Once `stop` is set the daemon stays up, so every batch gets its answer."""
        while True:
            try:
                status, _ = await self.daemon.post(batch, timeout=5)
            except (aiohttp.ClientError, OSError, TimeoutError):
                status = 0
            if status not in (0, 503):
                return status
            self.retries += 1
            await asyncio.sleep(0.02)  # back off before retrying, as a real client would

    async def run(self) -> None:
        while not self.stop.is_set():
            batch = [self._next_event() for _ in range(self.rng.randint(1, 3))]
            invalid = self.rng.random() < 0.1
            if invalid:  # one bad event: nothing of the batch may ever be delivered
                batch.append({"event": "exploded", "email": "nobody"})
            status = await self._post_until_answered(batch)
            ids = [item["event_id"] for item in batch if "event_id" in item]
            if invalid:
                assert status == 400, status
                self.refused.update(ids)
            else:
                assert status == 202, status
                self.accepted.update({item["event_id"]: item for item in batch})


async def test_kill_9_in_a_loop_loses_nothing_and_duplicates_only_at_kills(
    daemon: DaemonProcess,
) -> None:
    async def answer_after_a_moment(_r: Receiver, _request: web.Request) -> web.Response:
        await asyncio.sleep(random.uniform(0, 0.03))  # so attempts are in flight at a kill
        return web.Response(status=200)

    receiver = await Receiver(handler=answer_after_a_moment).start()
    rng = random.Random(20240115)
    try:
        base = f"http://127.0.0.1:{receiver.port}"
        schedule = {"retry_schedule": [0.05, 0.1, 0.2, 0.5] + [1.0] * 30}
        daemon.add_webhook("all", f"{base}/all", channel=schedule)
        daemon.add_webhook("filtered", f"{base}/filtered", channel=schedule,
                           filters={"sending_domain": [MATCHING_DOMAIN]})
        await daemon.start()
        stop = asyncio.Event()
        clients = [Client(daemon, f"c{n}", stop, random.Random(n)) for n in range(CLIENTS)]
        tasks = [asyncio.create_task(client.run()) for client in clients]
        kills: list[tuple[float, float]] = []  # (signal sent, process reaped)
        try:
            for _ in range(KILLS):
                await asyncio.sleep(rng.uniform(0.2, 1.0))  # the random moment of the kill
                sent = time.time()
                await daemon.kill()
                kills.append((sent, time.time()))
                await daemon.start()
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        accepted = {key: item for client in clients for key, item in client.accepted.items()}
        refused = set().union(*(client.refused for client in clients))
        expected = {
            (webhook, event_id)
            for event_id, item in accepted.items()
            for webhook in WEBHOOKS
            if webhook == "all" or item["sending_domain"] == MATCHING_DOMAIN
        }

        def received() -> Counter[tuple[str, str]]:
            return Counter(
                (request.path.strip("/"), request.json()["event_id"])
                for request in receiver.requests
            )

        await wait_until(lambda: expected <= set(received()), 60,
                         "every accepted event at every matching webhook")
        # Settle: every delivery recorded, so no attempt is still on its way.
        async def settled() -> bool:
            _, status = await daemon.request("GET", "/status")
            return bool(status["queue"]["pending"] == 0 and status["queue"]["in_flight"] == 0)

        await wait_until(settled, 30, "the queue to drain")

        counts = received()
        delivered_ids = {event_id for _, event_id in counts}
        duplicates = {key: n - 1 for key, n in counts.items() if n > 1}
        print(
            f"\ncrash loop: accepted={len(accepted)} refused={len(refused)} "
            f"expected_deliveries={len(expected)} requests={len(receiver.requests)} "
            f"delivered={len(counts)} duplicates={sum(duplicates.values())} kills={len(kills)} "
            f"client_retries={sum(client.retries for client in clients)}"
        )
        assert set(counts) == expected, "deliveries to webhooks the event did not match"
        assert not delivered_ids & refused, "events of a refused batch were delivered"
        assert delivered_ids <= set(accepted), "an event that never got a 202 was delivered"
        # At a kill, a lane can have LANE_CONCURRENCY requests on the wire and as many
        # answered whose outcome is still waiting for its commit (a slot frees as soon as
        # the answer is in): both are delivered again after the restart.
        assert sum(duplicates.values()) <= KILLS * 2 * LANE_CONCURRENCY * len(WEBHOOKS)
        # Each duplicate straddles a kill: the first copy was on its way when the daemon
        # died, the next came after the restart. (The receiver shares the test's loop, so
        # it may read a request the dead daemon sent a little after the process is reaped.)
        for (webhook, event_id) in duplicates:
            times = sorted(request.at for request in receiver.requests
                           if request.path.strip("/") == webhook
                           and request.json()["event_id"] == event_id)
            for earlier, later in itertools.pairwise(times):
                assert any(earlier <= reaped + READ_LAG and later >= sent
                           for sent, reaped in kills), (
                    f"{webhook}/{event_id} delivered at {times} with no kill in between: {kills}"
                )
    finally:
        await receiver.stop()
