"""[deliver] Due deliveries from the spool to their channels: one lane per webhook, started
when a webhook has work, woken by intake, stopped on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence

from mailhooks import log
from mailhooks.delivery.health import Health
from mailhooks.delivery.lane import Lane, LaneShared, Recorder, hand_over_room
from mailhooks.delivery.pace import Pacer
from mailhooks.delivery.retry import Breaker, Settler
from mailhooks.live import LiveSet, LiveWebhook
from mailhooks.metrics import Metrics
from mailhooks.settings import Settings
from mailhooks.spool import Delivery, Spool

_log = log.get("mailhooks.dispatch")


class Dispatcher:
    def __init__(
        self,
        spool: Spool,
        settings: Settings,
        metrics: Metrics,
        webhook: Callable[[str], LiveWebhook | None],
    ) -> None:
        self.metrics = metrics
        self.webhook = webhook
        self.stopping = asyncio.Event()
        self.health = Health(spool, settings, metrics)
        self.settler = Settler(settings, metrics, self.health)
        self.lanes: dict[str, Lane] = {}
        self.recorder = Recorder()
        self._shared = LaneShared(spool, self.settler, Pacer(), self.recorder, webhook, self.stopping)
        self._spool = spool

    async def start(self) -> None:
        """Lanes for every webhook that has work left from before a restart."""
        await self.health.load()
        self.wake(await self._spool.pending_webhooks())

    def claimed_ids(self) -> list[int]:
        """Deliveries being attempted or queued for an attempt, in every lane."""
        return [delivery_id for lane in self.lanes.values() for delivery_id in lane.claimed]

    def resume(self, webhook_id: str, reason: str) -> bool:
        """Resume a webhook the daemon paused; False when it was not paused."""
        if not self.health.resume(webhook_id, reason):
            return False
        lane = self.lanes.get(webhook_id)
        if lane is not None and lane.breaker.is_open:
            lane.breaker.open_until = 0.0  # an operator said "try now": the probe goes now
        self.wake([webhook_id])
        return True

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
            lane = self.lanes[webhook_id] = lane or Lane(webhook_id, self._shared)
            lane.task = asyncio.create_task(lane.run(), name=f"lane:{webhook_id}")
        if new:
            lane.take(new)
        if not lane.full:
            lane.wakeup.set()

    async def swap(self, previous: LiveSet, live: LiveSet) -> None:
        """A reload swapped the live set: a removed webhook's lane stops and its pending
        deliveries are dropped; a new or changed one's lane is woken."""
        for removed in sorted(set(previous.webhooks) - set(live.webhooks)):
            await self.remove(removed)
            dropped = await self._spool.drop_webhook(removed)
            if dropped:
                self.metrics.deliveries_by(removed, "dropped").inc(dropped)
            _log.warning("webhook_removed", webhook=removed, dropped_deliveries=dropped)
            self.health.forget([removed])
        # A paused webhook whose file changed is the repository's answer: try it again.
        self.health.resume_changed(live)
        changed = [key for key, hook in live.webhooks.items() if previous.webhooks.get(key) is not hook]
        for key in changed:
            # A changed file (a fixed URL, say) is not the endpoint that opened the breaker:
            # its next attempt goes when its delivery is due, not after the cooldown.
            lane = self.lanes.get(key)
            if lane is not None and key in previous.webhooks and lane.breaker.is_open:
                lane.breaker = Breaker()
                self.metrics.circuit_open.labels(key).set(0)
        self.wake(changed)

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
