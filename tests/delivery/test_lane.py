"""The dispatcher in process, with a real spool and a sender that records: how deliveries
just committed reach their lane."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from mailhooks.channels.base import Message, Outcome
from mailhooks.delivery.dispatcher import Dispatcher
from mailhooks.delivery.lane import PREFETCH
from mailhooks.live import LiveWebhook
from mailhooks.metrics import Metrics
from mailhooks.settings import Settings
from mailhooks.spool import AttemptResult, Delivery, NewEvent, Spool, SpoolError
from mailhooks.webhooks.load import LoadedWebhook
from mailhooks.webhooks.models import Webhook
from tests.utils import wait_until


class HeldSender:
    """Records every message; each send waits until `release` is set."""

    rate_key = "held"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.release = asyncio.Event()

    async def send(self, message: Message) -> Outcome:
        self.sent.append(message.message_id)
        await self.release.wait()
        return Outcome(ok=True, status=200)


class GatedSpool(Spool):
    """A spool that holds a lane's queries for due deliveries. The first one reads the
    spool once `read_gate` opens and answers once `gate` does; the others wait for
    `gate`, then read."""

    read_gate: asyncio.Event
    read: asyncio.Event
    gate: asyncio.Event
    calls: int = 0

    async def due_or_next(self, webhook_id: str, now: float, limit: int,
                          skip: Iterable[int] = (), *, batches: bool = False,
                          ) -> tuple[list[Delivery], float | None]:
        self.calls += 1
        if self.calls == 1:
            await self.read_gate.wait()
            answer = await super().due_or_next(webhook_id, time.time(), limit, skip, batches=batches)
            self.read.set()
            await self.gate.wait()
            return answer
        await self.gate.wait()
        return await super().due_or_next(webhook_id, time.time(), limit, skip, batches=batches)


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[GatedSpool]:
    opened = await GatedSpool.open(tmp_path / "spool.db", max_bytes=1 << 30, retention=3600)
    assert isinstance(opened, GatedSpool)
    opened.read_gate, opened.read, opened.gate = asyncio.Event(), asyncio.Event(), asyncio.Event()
    yield opened
    await opened.close()


def live_webhook(sender: HeldSender, webhook_id: str = "hook", **channel: Any) -> LiveWebhook:
    webhook = Webhook.model_validate({
        "name": "Hook", "events": "all",
        "channel": {"type": "web", "url": "https://hooks.example.com/in", **channel},
    })
    loaded = LoadedWebhook(webhook_id, Path(f"{webhook_id}.yaml"), webhook, "0")
    return LiveWebhook(webhook_id, loaded, sender)


async def spool_events(spool: Spool, *event_ids: str) -> list[Delivery]:
    added = await spool.add([NewEvent(event_id, "delivered", f"m-{event_id}", b"{}", ("hook",))
                             for event_id in event_ids])
    return added.deliveries


@pytest.fixture
async def dispatching(spool: GatedSpool) -> AsyncIterator[tuple[Dispatcher, HeldSender]]:
    """A dispatcher of one webhook, "hook", whose sender records; at the end every gate
    opens and in-flight attempts finish."""
    sender = HeldSender()
    dispatcher = Dispatcher(spool, Settings(), Metrics(), {"hook": live_webhook(sender)}.get)
    yield dispatcher, sender
    sender.release.set()
    spool.read_gate.set()
    spool.gate.set()
    await dispatcher.stop(grace=5)


async def test_deliveries_handed_over_are_sent_without_asking_the_spool(
    spool: GatedSpool, dispatching: tuple[Dispatcher, HeldSender],
) -> None:
    dispatcher, sender = dispatching
    dispatcher.wake(["hook"], await spool_events(spool, "a", "b", "c"))
    # Every query for due deliveries is held at its gates.
    await wait_until(lambda: len(sender.sent) == 3, 10, "the handed-over deliveries sent")
    assert sorted(sender.sent) == ["a", "b", "c"]


async def test_a_query_that_read_the_spool_before_the_hand_over_adds_no_second_attempt(
    spool: GatedSpool, dispatching: tuple[Dispatcher, HeldSender],
) -> None:
    dispatcher, sender = dispatching

    async def drained() -> bool:
        return (await spool.stats()).pending == 0

    dispatcher.wake(["hook"])
    await wait_until(lambda: spool.calls == 1, 10, "the lane's first query")
    new = await spool_events(spool, "a", "b")
    # The query reads both as pending after their commit, before intake hands them
    # over; its answer comes only once they are attempted and recorded.
    spool.read_gate.set()
    await wait_until(spool.read.is_set, 10, "the query's read")
    dispatcher.wake(["hook"], new)
    await wait_until(lambda: len(sender.sent) == 2, 10, "the handed-over deliveries sent")
    sender.release.set()
    await wait_until(drained, 10, "their outcomes recorded")
    spool.gate.set()
    await wait_until(lambda: spool.calls >= 2, 10, "the lane's next query")
    lane = dispatcher.lanes["hook"]
    await wait_until(lambda: not lane.sending, 10, "the lane idle")
    assert sorted(sender.sent) == ["a", "b"]


async def test_deliveries_are_read_back_only_for_a_lane_that_would_take_them(
    spool: GatedSpool, dispatching: tuple[Dispatcher, HeldSender],
) -> None:
    dispatcher, sender = dispatching
    assert dispatcher.wants(["hook"])  # no lane yet: the first delivery starts one
    # PREFETCH taken, 8 of them started at once; then as many as fill the queue, and
    # more that the lane leaves in the spool for a fetch.
    dispatcher.wake(["hook"], await spool_events(spool, *(f"a{n}" for n in range(PREFETCH))))
    dispatcher.wake(["hook"], await spool_events(spool, *(f"b{n}" for n in range(12))))
    await wait_until(lambda: len(sender.sent) == 8, 10, "the lane's workers busy")
    assert len(dispatcher.lanes["hook"].queue) == PREFETCH
    assert not dispatcher.wants(["hook"])
    assert not dispatcher.wants(["hook", "unknown"])


async def test_a_webhook_that_sends_batches_wants_nothing_handed_over(
    spool: GatedSpool,
) -> None:
    sender = HeldSender()
    webhooks = {"hook": live_webhook(sender),
                "batched": live_webhook(sender, "batched", batch={"max_events": 10})}
    dispatcher = Dispatcher(spool, Settings(), Metrics(), webhooks.get)
    assert dispatcher.wants(["batched", "hook"])
    assert not dispatcher.wants(["batched"])


class UnwritableSpool(Spool):
    """A spool whose next `failures` outcome writes fail, as on a full disk."""

    failures = 0

    def record_soon(self, results: Sequence[AttemptResult]) -> asyncio.Future[None]:
        if self.failures > 0:
            self.failures -= 1
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.set_exception(SpoolError("spool cannot grow: database or disk is full"))
            return future
        return super().record_soon(results)


async def test_an_unwritten_outcome_keeps_its_delivery_claimed_until_written(tmp_path: Path) -> None:
    spool = await UnwritableSpool.open(tmp_path / "spool.db", max_bytes=1 << 30, retention=3600)
    assert isinstance(spool, UnwritableSpool)
    spool.failures = 3
    sender = HeldSender()
    sender.release.set()
    dispatcher = Dispatcher(spool, Settings(), Metrics(), {"hook": live_webhook(sender)}.get)
    try:
        dispatcher.wake(["hook"], await spool_events(spool, "a"))
        await wait_until(lambda: dispatcher.recorder.failing_since is not None, 10, "a failed write")
        # Woken while its outcome is unwritten (new events, a reload): nothing is resent.
        for _ in range(3):
            dispatcher.wake(["hook"])
            await asyncio.sleep(0)
        await wait_until(lambda: dispatcher.recorder.failing_since is None, 15, "the write retried")
        assert (await spool.stats()).pending == 0
        assert sender.sent == ["a"]
    finally:
        await dispatcher.stop(grace=5)
        await spool.close()
