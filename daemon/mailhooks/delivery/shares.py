"""[deliver] One dead endpoint never starves the others of the spool (SPEC §5).

Each webhook's pending deliveries are capped: its own `max_pending`, or its share of
`spool.max_bytes` (`spool.webhook_share`, a quarter by default) counted in rows at the
spool's bytes per delivery. Past the cap, its oldest pending deliveries fail (kept,
replayable); its failed ones are bounded by the same cap, the oldest evicted first.
Intake and every other webhook go on. Checked every second, and at once, whole, when
intake finds the spool full: then, should the spool still be full, failed deliveries
go too (the oldest, of the webhooks holding the most failed bytes first), so intake
answers 503 only when pending deliveries within their shares fill it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from mailhooks import log
from mailhooks.live import LiveRef
from mailhooks.metrics import Metrics
from mailhooks.settings import Settings
from mailhooks.spool import ShareOutcome, Spool

# Swept often, a little at a time: one commit that fails or evicts thousands of rows
# would hold intake's commits up behind it.
SWEEP_EVERY: Final = 1.0
SWEEP_ROWS: Final = 2000
# Below this many rows the spool's bytes per delivery says more about its empty pages
# than about deliveries; until then a delivery is taken to cost DEFAULT_ROW_BYTES.
MEASURED_FROM: Final = 1000
DEFAULT_ROW_BYTES: Final = 1024.0
MIN_CAP: Final = 100
# A log line per webhook at most this often (seconds): a burst, or events trickling in
# one at a time to a webhook at its cap, is one line carrying the rows since the last.
LOG_EVERY: Final = 60.0
# Room made for intake in a full spool: this part of `spool.max_bytes` below it (at
# most EVICT_MARGIN_MAX bytes), so that the next requests fit too.
EVICT_MARGIN: Final = 0.01
EVICT_MARGIN_MAX: Final = 8 * 1024 * 1024

_log = log.get("mailhooks.dispatch")


class BurstLog:
    """One log line per webhook per `every` seconds at most, with how many of its
    deliveries went each way (failed, evicted) since its previous line; the metrics
    count every one."""

    def __init__(self, event: str, hint: str, every: float = LOG_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.event = event
        self.hint = hint
        self.every = every
        self.clock = clock
        self._last: dict[str, float] = {}  # when each webhook's last line was written
        self._since: dict[str, dict[str, int]] = {}  # the counts since that line

    def note(self, webhook_id: str, counts: dict[str, int], **fields: Any) -> None:
        held = self._since.pop(webhook_id, {})
        counts = {key: count + held.get(key, 0) for key, count in counts.items()}
        now = self.clock()
        last = self._last.get(webhook_id)
        if last is not None and now - last < self.every:
            self._since[webhook_id] = counts
            return
        # Webhooks quiet for a whole interval, with nothing held back, are forgotten.
        self._last = {key: at for key, at in self._last.items()
                      if now - at < self.every or key in self._since}
        self._last[webhook_id] = now
        _log.warning(self.event, webhook=webhook_id, **counts, **fields, hint=self.hint)


class ShareKeeper:
    def __init__(self, spool: Spool, settings: Settings, metrics: Metrics, current: LiveRef,
                 claimed: Callable[[], list[int]]) -> None:
        self.spool = spool
        self.settings = settings
        self.metrics = metrics
        self.current = current
        self.claimed = claimed
        self._over = BurstLog(
            "webhook_over_share",
            f"its oldest deliveries fail, then go; one line per webhook per {LOG_EVERY:g} s "
            "at most, counting the deliveries since the last")
        self._room = BurstLog(
            "failed_evicted_for_intake",
            "the spool was full: its oldest failed deliveries went to make room for intake; "
            f"one line per webhook per {LOG_EVERY:g} s at most, counting those since the last")

    async def caps(self) -> tuple[dict[str, int], int]:
        """Each running webhook's cap in rows, and the cap of any other id in the spool."""
        measured = await self.spool.bytes_per_delivery()
        stats = await self.spool.stats()
        per_row = measured if stats.pending + stats.failed >= MEASURED_FROM else DEFAULT_ROW_BYTES
        share = self.settings.spool.webhook_share * self.settings.spool.max_bytes
        default_cap = max(MIN_CAP, int(share / max(per_row, 1.0)))
        caps = {
            webhook_id: hook.channel.max_pending or default_cap
            for webhook_id, hook in self.current.now.webhooks.items()
        }
        return caps, default_cap

    async def sweep(self, *, whole: bool = False) -> dict[str, ShareOutcome]:
        """Bring every webhook towards its cap (`SWEEP_ROWS` rows at a time, or `whole`ly
        when intake needs the room now, evicting failed deliveries too should the spool
        still be full); what was failed and evicted, by webhook."""
        caps, default_cap = await self.caps()
        done = await self.spool.keep_within(caps, default_cap, self.claimed(),
                                            None if whole else SWEEP_ROWS)
        for webhook_id, outcome in done.items():
            if outcome.failed:
                self.metrics.deliveries_by(webhook_id, "failed").inc(outcome.failed)
            if outcome.evicted:
                self.metrics.deliveries_by(webhook_id, "evicted").inc(outcome.evicted)
            self._over.note(webhook_id, {"failed": outcome.failed, "evicted": outcome.evicted},
                            cap=caps.get(webhook_id, default_cap))
        if whole:
            max_bytes = self.settings.spool.max_bytes
            below = max_bytes - min(int(max_bytes * EVICT_MARGIN), EVICT_MARGIN_MAX)
            for webhook_id, evicted in (await self.spool.evict_failed(below)).items():
                self.metrics.deliveries_by(webhook_id, "evicted").inc(evicted)
                self._room.note(webhook_id, {"evicted": evicted})
                before = done.get(webhook_id, ShareOutcome(0, 0))
                done[webhook_id] = ShareOutcome(before.failed, before.evicted + evicted)
        return done
