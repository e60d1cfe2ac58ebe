"""[deliver] One webhook's lane: its queue of due deliveries, its concurrency, its
circuit breaker.

Each webhook has its own lane (its own queue position, concurrency limit and breaker), so
a slow, failing or dead endpoint never delays the others. What the lane needs of a
channel comes from its `ChannelKind` and its config (`LiveWebhook.kind`, `.batching`);
what an outcome means comes from `retry.Settler`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from mailhooks import log
from mailhooks.channels.base import Outcome
from mailhooks.delivery.message import message_for
from mailhooks.delivery.pace import Pacer
from mailhooks.delivery.retry import Breaker, Settler
from mailhooks.live import LiveWebhook
from mailhooks.spool import AttemptResult, Delivery, Spool

IDLE_RECHECK: Final = 60.0
# Due deliveries fetched per query: enough to keep a lane busy between queries; the
# next query starts when the queue is down to LOW_WATER.
PREFETCH: Final = 64
LOW_WATER: Final = 16
# Seconds before an unwritten outcome is written again, doubling up to the maximum.
RECORD_BACKOFF: Final = 0.5
RECORD_BACKOFF_MAX: Final = 30.0

_log = log.get("mailhooks.dispatch")


class Recorder:
    """Whether attempt outcomes reach the disk. While they do not, the daemon says so once
    and intake answers 503: what it cannot record it must not take on."""

    def __init__(self) -> None:
        self.failing_since: float | None = None
        self.error = ""

    def failed(self, error: str) -> None:
        if self.failing_since is None:
            self.failing_since, self.error = time.time(), error
            _log.error("outcomes_not_recorded", error=error,
                       hint="deliveries stay claimed and their outcomes are written again; "
                       "intake answers 503 until they are")

    def stored(self) -> None:
        if self.failing_since is not None:
            _log.info("outcomes_recorded_again", after_s=round(time.time() - self.failing_since, 1))
            self.failing_since = None


@dataclass(frozen=True)
class LaneShared:
    """What every lane uses and the dispatcher owns."""

    spool: Spool
    settler: Settler
    pacer: Pacer
    recorder: Recorder
    webhook: Callable[[str], LiveWebhook | None]
    stopping: asyncio.Event


def hand_over_room(live: LiveWebhook | None, queued: int) -> int:
    """How many deliveries just committed a lane with `queued` waiting would take: up to
    PREFETCH queued, and none for a webhook that sends batches (its lane gathers them)."""
    if live is None or live.batching is not None:
        return 0
    return PREFETCH - queued


class Lane:
    """One webhook's deliveries: handed over by intake or fetched in batches, sent up to
    its concurrency, settled.

    The lane's own task fetches and keeps up to its concurrency of workers running; a
    worker sends one delivery after another from the queue while the lane may send (no
    hold, breaker closed, the same config), so a busy lane does not start a task or go
    through its own loop per delivery. Deliveries just committed are handed over
    straight into the queue (`take`): the first attempt needs no query. A delivery is
    *claimed* from the moment it is queued until its outcome is committed, so it is
    never queued, and never sent, twice; a worker does not wait for that commit before
    its next request.
    """

    def __init__(self, webhook_id: str, shared: LaneShared) -> None:
        self.webhook_id = webhook_id
        self.shared = shared
        self.wakeup = asyncio.Event()
        self.sending: set[asyncio.Task[None]] = set()
        self.claimed: set[int] = set()
        self.queue: deque[Delivery] = deque()
        # While a query for due deliveries runs: the ids intake handed over meanwhile.
        self.handed_over: set[int] | None = None
        self.breaker = Breaker()
        self.task: asyncio.Task[None] | None = None
        # True while the lane waits only for a free sending slot: new events cannot help,
        # and a worker that ends wakes it anyway.
        self.full = False
        self.wakeup.set()

    def concurrency(self, live: LiveWebhook) -> int:
        if self.breaker.is_open:
            return 1  # the probe
        # A batching webhook sends one batch at a time: a batch is retried whole.
        return 1 if live.batching is not None else live.kind.concurrency

    def _held_until(self, live: LiveWebhook) -> float:
        return max(
            self.breaker.open_until if self.breaker.is_open else 0.0,
            self.shared.settler.held_until(live),
            self.shared.settler.health.paused_until(self.webhook_id),
        )

    async def run(self) -> None:
        """Start due deliveries while there is room; sleep until woken (new events, a
        worker done) or until the next delivery falls due."""
        shared = self.shared
        while not shared.stopping.is_set():
            live = shared.webhook(self.webhook_id)
            if live is None:
                return
            now = time.time()
            hold = self._held_until(live)
            if hold > now:
                await self._sleep(hold - now)
                continue
            batch = live.batching
            if batch is not None:
                if len(self.sending) < self.concurrency(live):
                    await self._start_batch(live, batch.max_events, batch.max_wait, now)
                else:
                    await self._wait_for_room()
                continue
            # What is queued (handed over by intake, or fetched) starts first; then fetch
            # before the queue runs dry, even while every slot is busy, so the workers
            # find the next deliveries queued.
            room = self._start_queued(live)
            if len(self.queue) <= LOW_WATER:
                await self._fetch(now, PREFETCH)  # sleeps when nothing is due or queued
                room = self.concurrency(live) - len(self.sending)
            if room <= 0 and self.queue:
                await self._wait_for_room()

    async def _wait_for_room(self) -> None:
        """Sleep until a worker ends or the queue runs low; new events cannot help."""
        self.full = True
        try:
            await self._sleep(IDLE_RECHECK)
        finally:
            self.full = False

    async def _due(self, now: float, limit: int, *, batches: bool = False) -> list[Delivery]:
        """Unclaimed deliveries due now (with `batches`, a failed batch's members whole);
        when there are none, sleep until the next one is due (or the lane is woken) and
        return none."""
        due, next_due = await self.shared.spool.due_or_next(
            self.webhook_id, now, limit, self.claimed, batches=batches
        )
        if not due and not self.queue:
            await self._sleep(IDLE_RECHECK if next_due is None else next_due - time.time())
        return due

    async def _fetch(self, now: float, limit: int) -> None:
        """Queue and claim due deliveries."""
        handed_over: set[int] = set()
        self.handed_over = handed_over
        try:
            due = await self._due(now, limit)
        finally:
            self.handed_over = None
        # What intake handed over while the query ran may be in its answer, still
        # pending, even once attempted and recorded: it must not be attempted again.
        self._claim([delivery for delivery in due if delivery.id not in handed_over])

    def take(self, deliveries: Sequence[Delivery]) -> None:
        """Queue and claim deliveries just committed, up to PREFETCH queued, and start
        what there is room for, even while the lane waits for a query; unless this lane
        sends batches (it gathers its own). What it leaves, it fetches later."""
        live = self.shared.webhook(self.webhook_id)
        room = hand_over_room(live, len(self.queue))
        if live is None or room <= 0:
            return
        # A query that read the spool after the commit may have claimed some already.
        taken = [delivery for delivery in deliveries if delivery.id not in self.claimed][:room]
        if self.handed_over is not None:
            self.handed_over.update(delivery.id for delivery in taken)
        self._claim(taken)
        if self._held_until(live) <= time.time():
            self._start_queued(live)

    def _start_queued(self, live: LiveWebhook) -> int:
        """Start queued deliveries while there is room; returns the room left."""
        room = self.concurrency(live) - len(self.sending)
        while room > 0 and self.queue:
            self._start(live, [self.queue.popleft()], batched=False)
            room -= 1
        return room

    def _claim(self, deliveries: list[Delivery]) -> None:
        self.queue.extend(deliveries)
        self.claimed.update(delivery.id for delivery in deliveries)

    async def _start_batch(self, live: LiveWebhook, size: int, max_wait: float, now: float) -> None:
        due = await self._due(now, size, batches=True)
        if not due:
            return
        waited = now - min(delivery.created_at for delivery in due)
        retry = due[0].batch is not None  # a failed batch goes again as it was
        if not retry and len(due) < size and waited < max_wait:
            await self._sleep(max_wait - waited)
            return
        self.claimed.update(delivery.id for delivery in due)
        self._start(live, due, batched=True)

    async def _sleep(self, seconds: float) -> None:
        seconds = min(max(seconds, 0.001), IDLE_RECHECK)
        try:
            # asyncio.timeout, not wait_for: no task per sleep.
            async with asyncio.timeout(seconds):
                await self.wakeup.wait()
        except TimeoutError:
            pass
        self.wakeup.clear()

    def _start(self, live: LiveWebhook, deliveries: list[Delivery], *, batched: bool) -> None:
        task = asyncio.create_task(self._work(live, deliveries, batched))
        self.sending.add(task)

    def _next(self, live: LiveWebhook) -> Delivery | None:
        """The worker's next delivery, or None when it should end: nothing queued, the
        lane stopping, its config reloaded, a hold or an open breaker, or more workers
        than the concurrency allows."""
        shared = self.shared
        if (not self.queue or shared.stopping.is_set()
                or shared.webhook(self.webhook_id) is not live
                or len(self.sending) > self.concurrency(live)
                or self._held_until(live) > time.time()):
            return None
        if len(self.queue) == LOW_WATER:
            self.wakeup.set()  # fetch more while the workers go on
        return self.queue.popleft()

    async def _work(self, live: LiveWebhook, deliveries: list[Delivery], batched: bool) -> None:
        current = asyncio.current_task()
        try:
            while True:
                try:
                    results = await self._attempt(live, deliveries, batched)
                except BaseException:  # cancelled at shutdown: still pending in the spool
                    self.claimed.difference_update(delivery.id for delivery in deliveries)
                    raise
                self._record(deliveries, results)
                following = None if batched else self._next(live)
                if following is None:
                    return
                deliveries = [following]
        finally:
            if current is not None:
                self.sending.discard(current)
            self.wakeup.set()

    async def _attempt(
        self, live: LiveWebhook, deliveries: list[Delivery], batched: bool
    ) -> list[AttemptResult]:
        await self._keep_pace(live)
        message = message_for(deliveries, batched)
        batch = message.message_id if batched else None
        started, clock = time.time(), time.perf_counter()
        try:
            outcome = await live.sender.send(message)
        except Exception as error:  # a channel bug must not lose the delivery
            outcome = Outcome(ok=False, retry=True,
                              error=f"internal error: {type(error).__name__}")
            _log.exception("channel_error", webhook=self.webhook_id)
        duration = outcome.duration_ms or (time.perf_counter() - clock) * 1000
        return self.shared.settler.settle(live, self.breaker, deliveries, outcome, duration, started,
                                          batch)

    async def _keep_pace(self, live: LiveWebhook) -> None:
        """Wait until the channel's service takes another request to this destination."""
        rate = live.kind.rate
        if rate is None:
            return
        pacer, key = self.shared.pacer, live.sender.rate_key
        # A wait for time to pass, not for a flag: another worker may take the slot
        # meanwhile, so the pacer is asked again after each wait.
        while (delay := pacer.delay(key, rate, time.monotonic())) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)

    def _record(self, deliveries: list[Delivery], results: list[AttemptResult], tries: int = 0) -> None:
        """Store the outcomes; the deliveries stay claimed until they are on disk.

        An outcome that cannot be written (a full disk) is written again, with backoff,
        while its deliveries stay claimed: released, a delivered event would look
        pending and go to its receiver again."""
        ids = [delivery.id for delivery in deliveries]
        retry = any(result.state == "pending" for result in results)
        recorder = self.shared.recorder

        def stored(future: asyncio.Future[None]) -> None:
            if future.cancelled():  # shutdown: the spool still says pending, as it was
                self.claimed.difference_update(ids)
                return
            error = future.exception()
            if error is not None:
                recorder.failed(str(error))
                delay = min(RECORD_BACKOFF * 2 ** tries, RECORD_BACKOFF_MAX)
                asyncio.get_running_loop().call_later(
                    delay, self._record, deliveries, results, tries + 1
                )
                return
            recorder.stored()
            self.claimed.difference_update(ids)
            if retry:
                self.wakeup.set()  # a retry's new due time is visible only now: look again

        self.shared.spool.record_soon(results).add_done_callback(stored)
