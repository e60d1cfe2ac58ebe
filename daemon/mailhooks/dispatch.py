"""[deliver] Due deliveries from the spool to their channels: one lane per webhook.

Each webhook has its own lane (its own queue position, concurrency limit and circuit
breaker), so a slow, failing or dead endpoint never delays the others. The retry policy
lives here once for every channel: a channel says whether a failure may be retried; this
module decides when, with the schedule, jitter, `Retry-After` and holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, overload

from mailhooks import log
from mailhooks.channels.base import Message, Outcome
from mailhooks.live import LiveWebhook
from mailhooks.metrics import Metrics
from mailhooks.settings import Settings
from mailhooks.spool import AttemptResult, Delivery, Spool

WEB_CONCURRENCY: Final = 8
PUSHOVER_CONCURRENCY: Final = 2
JITTER: Final = 0.2
BREAKER_THRESHOLD: Final = 5
BREAKER_BASE_COOLDOWN: Final = 10.0
BREAKER_MAX_COOLDOWN: Final = 300.0
IDLE_RECHECK: Final = 60.0
# Due deliveries fetched per query: enough to keep a lane busy between queries; the
# next query starts when the queue is down to LOW_WATER.
PREFETCH: Final = 64
LOW_WATER: Final = 16

_log = log.get("mailhooks.dispatch")


def backoff(attempts: int, schedule: Sequence[float], retry_after: float | None) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones; None when exhausted."""
    if attempts > len(schedule):
        return None
    base = schedule[attempts - 1]
    delay = base * random.uniform(1 - JITTER, 1 + JITTER)
    return max(delay, retry_after or 0.0)


def message_for(deliveries: Sequence[Delivery], batched: bool) -> Message:
    """One request's message; its id is stable across retries of the same deliveries."""
    payloads = [delivery.payload for delivery in deliveries]
    if not batched:
        return Message(deliveries[0].event_id, _Parsed(payloads), payloads[0])
    digest = hashlib.sha256(",".join(str(d.id) for d in deliveries).encode()).hexdigest()[:24]
    return Message(f"batch_{digest}", _Parsed(payloads), b"[" + b",".join(payloads) + b"]")


class _Parsed(Sequence[dict[str, Any]]):
    """The events of a message, parsed from their JSON only if a channel reads them (a
    web channel sends the bytes as they are)."""

    def __init__(self, payloads: list[bytes]) -> None:
        self._payloads = payloads
        self._parsed: list[dict[str, Any]] | None = None

    def _events(self) -> list[dict[str, Any]]:
        if self._parsed is None:
            self._parsed = [json.loads(payload) for payload in self._payloads]
        return self._parsed

    def __len__(self) -> int:
        return len(self._payloads)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | Sequence[dict[str, Any]]:
        return self._events()[index]


@dataclass
class Breaker:
    """Opens after consecutive failures; lets one probe through after a cooldown that
    doubles each time a probe fails. Failures of attempts that were already in flight
    when it opened say nothing new about the endpoint and are not counted."""

    failures: int = 0
    open_until: float = 0.0
    opened_at: float = 0.0
    cooldown: float = BREAKER_BASE_COOLDOWN

    @property
    def is_open(self) -> bool:
        return self.failures >= BREAKER_THRESHOLD

    def success(self) -> bool:
        """Record a success; True when this closes an open breaker."""
        was_open = self.is_open
        self.failures, self.cooldown = 0, BREAKER_BASE_COOLDOWN
        return was_open

    def failure(self, now: float, started: float) -> bool:
        """Record a failure of an attempt started at `started`; True when the breaker
        (re)opens."""
        if self.is_open and started < self.opened_at:
            return False
        self.failures += 1
        if self.failures < BREAKER_THRESHOLD:
            return False
        if self.failures > BREAKER_THRESHOLD:  # the probe failed
            self.cooldown = min(self.cooldown * 2, BREAKER_MAX_COOLDOWN)
        self.opened_at, self.open_until = now, now + self.cooldown
        return True


def hand_over_room(live: LiveWebhook | None, queued: int) -> int:
    """How many deliveries just committed a lane with `queued` waiting would take: up to
    PREFETCH queued, and none for a webhook that sends batches (its lane gathers them)."""
    if live is None or getattr(live.loaded.webhook.channel, "batch", None) is not None:
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

    def __init__(self, webhook_id: str, dispatcher: Dispatcher) -> None:
        self.webhook_id = webhook_id
        self.dispatcher = dispatcher
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
        if live.loaded.webhook.channel.type == "pushover":
            return PUSHOVER_CONCURRENCY
        batch = getattr(live.loaded.webhook.channel, "batch", None)
        return 1 if batch is not None else WEB_CONCURRENCY

    def _held_until(self, live: LiveWebhook) -> float:
        return max(
            self.breaker.open_until if self.breaker.is_open else 0.0,
            self.dispatcher.holds.get(live.loaded.webhook.channel.type, 0.0),
        )

    async def run(self) -> None:
        """Start due deliveries while there is room; sleep until woken (new events, a
        worker done) or until the next delivery falls due."""
        dispatcher = self.dispatcher
        while not dispatcher.stopping.is_set():
            live = dispatcher.webhook(self.webhook_id)
            if live is None:
                return
            now = time.time()
            hold = self._held_until(live)
            if hold > now:
                await self._sleep(hold - now)
                continue
            batch = getattr(live.loaded.webhook.channel, "batch", None)
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

    async def _due(self, now: float, limit: int) -> list[Delivery]:
        """Unclaimed deliveries due now; when there are none, sleep until the next one is
        due (or the lane is woken) and return none."""
        due, next_due = await self.dispatcher.spool.due_or_next(
            self.webhook_id, now, limit, self.claimed
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
        live = self.dispatcher.webhook(self.webhook_id)
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
        due = await self._due(now, size)
        if not due:
            return
        waited = now - min(delivery.created_at for delivery in due)
        if len(due) < size and waited < max_wait:
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
        dispatcher = self.dispatcher
        if (not self.queue or dispatcher.stopping.is_set()
                or dispatcher.webhook(self.webhook_id) is not live
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
        message = message_for(deliveries, batched)
        started, clock = time.time(), time.perf_counter()
        try:
            outcome = await live.sender.send(message)
        except Exception as error:  # a channel bug must not lose the delivery
            outcome = Outcome(ok=False, retry=True,
                              error=f"internal error: {type(error).__name__}")
            _log.exception("channel_error", webhook=self.webhook_id)
        duration = outcome.duration_ms or (time.perf_counter() - clock) * 1000
        return self.dispatcher.settle(self, live, deliveries, outcome, duration, started)

    def _record(self, deliveries: list[Delivery], results: list[AttemptResult]) -> None:
        """Store the outcomes; the deliveries stay claimed until they are on disk."""
        ids = [delivery.id for delivery in deliveries]
        retry = any(result.state == "pending" for result in results)

        def stored(future: asyncio.Future[None]) -> None:
            self.claimed.difference_update(ids)
            if not future.cancelled() and future.exception() is not None:
                # Unrecorded means still pending: the delivery is retried, never lost.
                _log.error("record_failed", webhook=self.webhook_id, deliveries=len(ids),
                           error=str(future.exception()))
            if retry:
                self.wakeup.set()  # a retry's new due time is visible only now: look again

        self.dispatcher.spool.record_soon(results).add_done_callback(stored)


class Dispatcher:
    def __init__(
        self,
        spool: Spool,
        settings: Settings,
        metrics: Metrics,
        webhook: Callable[[str], LiveWebhook | None],
    ) -> None:
        self.spool = spool
        self.settings = settings
        self.metrics = metrics
        self.webhook = webhook
        self.lanes: dict[str, Lane] = {}
        self.holds: dict[str, float] = {}
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        """Lanes for every webhook that has work left from before a restart."""
        self.wake(await self.spool.pending_webhooks())

    def wake(self, webhook_ids: Iterable[str], new: Sequence[Delivery] = ()) -> None:
        """Start or wake the lanes of these webhooks, handing each the deliveries in `new`
        that are its own (just committed): queued straight into the lane, they need no
        trip to the spool's reader thread before the first attempt (that trip was a
        third of the latency from 202 to the receiver in a busy moment)."""
        if self.stopping.is_set():
            return
        by_webhook: dict[str, list[Delivery]] = {webhook_id: [] for webhook_id in webhook_ids}
        for delivery in new:
            by_webhook.setdefault(delivery.webhook_id, []).append(delivery)
        for webhook_id, deliveries in by_webhook.items():
            self._wake(webhook_id, deliveries)

    def wants(self, webhook_ids: Iterable[str]) -> bool:
        """Whether a lane of these webhooks would take deliveries handed over now: only
        then are they worth reading back after the commit (about 3 µs per delivery on
        the spool's writer thread, 5 to 10 % of batched intake while lanes are full)."""
        for webhook_id in webhook_ids:
            lane = self.lanes.get(webhook_id)
            queued = 0 if lane is None else len(lane.queue)
            if hand_over_room(self.webhook(webhook_id), queued) > 0:
                return True
        return False

    def _wake(self, webhook_id: str, new: list[Delivery]) -> None:
        """Start the webhook's lane if need be, hand it `new`, and wake it."""
        lane = self.lanes.get(webhook_id)
        if lane is None or lane.task is None or lane.task.done():
            if self.webhook(webhook_id) is None:
                return
            lane = self.lanes[webhook_id] = lane or Lane(webhook_id, self)
            lane.task = asyncio.create_task(lane.run(), name=f"lane:{webhook_id}")
        if new:
            lane.take(new)
        if not lane.full:
            lane.wakeup.set()

    async def remove(self, webhook_id: str) -> None:
        """A deleted webhook: stop its lane; in-flight attempts finish and are recorded."""
        lane = self.lanes.pop(webhook_id, None)
        if lane is not None and lane.task is not None:
            lane.wakeup.set()
            lane.task.cancel()
            await asyncio.gather(lane.task, return_exceptions=True)
        with contextlib.suppress(KeyError):  # no series if its breaker never opened
            self.metrics.circuit_open.remove(webhook_id)

    def in_flight(self) -> int:
        return sum(len(lane.sending) for lane in self.lanes.values())

    async def stop(self, grace: float) -> int:
        """Stop starting attempts; give those in flight `grace` seconds, then cancel them
        (they stay pending in the spool). Returns how many were cancelled."""
        self.stopping.set()
        for lane in self.lanes.values():
            lane.wakeup.set()
        lanes = [lane.task for lane in self.lanes.values() if lane.task is not None]
        await asyncio.gather(*lanes, return_exceptions=True)
        attempts = {task for lane in self.lanes.values() for task in lane.sending}
        if not attempts:
            return 0
        _done, pending = await asyncio.wait(attempts, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)

    def settle(
        self, lane: Lane, live: LiveWebhook, deliveries: list[Delivery], outcome: Outcome,
        duration_ms: float, started: float,
    ) -> list[AttemptResult]:
        """One attempt's outcome for each of its deliveries: logged, counted, fed to the
        breaker, and returned for the lane to store."""
        now = time.time()
        schedule = live.retry_schedule
        if schedule is None:
            schedule = self.settings.retry_schedule
        if outcome.hold_until is not None:
            channel_type = live.loaded.webhook.channel.type
            self.holds[channel_type] = max(self.holds.get(channel_type, 0.0), outcome.hold_until)
            _log.warning("channel_held", webhook=live.id, channel=channel_type,
                         until=outcome.hold_until, reason=outcome.error)
        results = []
        for delivery in deliveries:
            attempt = delivery.attempts + 1
            if outcome.ok:
                state, next_at = "delivered", now
                self.metrics.end_to_end.observe(max(0.0, now - delivery.created_at))
            elif outcome.hold_until is not None:
                # Not the endpoint's fault: wait for the quota without spending an attempt.
                state, next_at, attempt = "pending", outcome.hold_until, delivery.attempts
            else:
                delay = backoff(attempt, schedule, outcome.retry_after) if outcome.retry else None
                state, next_at = ("failed", now) if delay is None else ("pending", now + delay)
            results.append(AttemptResult(delivery.id, state, attempt, next_at,
                                         outcome.status, outcome.error))
            label = {"delivered": "success", "failed": "failed"}.get(state, "retry")
            self.metrics.deliveries_by(live.id, label).inc()
            # A success is counted in the metrics and logged at debug only: a line per
            # delivery at info would pass journald's rate limit (10,000 lines per 30 s by
            # default) at a few hundred deliveries/s and hide the warnings with it.
            if state != "delivered" or log.debug_enabled():
                line = _log.debug if state == "delivered" else (
                    _log.info if state == "pending" else _log.warning
                )
                line(
                    "delivery_attempt", webhook=live.id, delivery=delivery.id,
                    event_id=delivery.event_id, message_id=delivery.message_id,
                    attempt=attempt, status=outcome.status,
                    duration_ms=round(duration_ms, 1), outcome=label, error=outcome.error,
                    next_attempt_in=round(next_at - now, 1) if state == "pending" else None,
                )
        self.metrics.delivery_latency_by(live.id).observe(duration_ms / 1000)
        self._breaker(lane, live.id, outcome, now, started)
        return results

    def _breaker(
        self, lane: Lane, webhook_id: str, outcome: Outcome, now: float, started: float
    ) -> None:
        if outcome.ok:
            if lane.breaker.success():
                self.metrics.circuit_open.labels(webhook_id).set(0)
                _log.info("circuit_closed", webhook=webhook_id)
            return
        if outcome.retry and outcome.hold_until is None and lane.breaker.failure(now, started):
            self.metrics.circuit_open.labels(webhook_id).set(1)
            _log.warning(
                "circuit_opened", webhook=webhook_id, failures=lane.breaker.failures,
                probe_in=round(lane.breaker.cooldown, 1), error=outcome.error,
            )
