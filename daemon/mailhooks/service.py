"""What the API does: take events, report, test, reload, replay. The HTTP handlers
(`server.py`) and the CLI's daemon commands reach the daemon only through this object,
which holds the parts it needs and nothing of the lifecycle."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from mailhooks import grants, log, systemd
from mailhooks.delivery.dispatcher import Dispatcher
from mailhooks.delivery.shares import ShareKeeper
from mailhooks.events import Event
from mailhooks.live import LiveRef, LiveWebhook
from mailhooks.metrics import Metrics
from mailhooks.reload import Reloader
from mailhooks.roles import Authority
from mailhooks.secrets import SecretSources
from mailhooks.settings import Settings
from mailhooks.sources.records import Skipped
from mailhooks.spool import DeliveryRecord, NewEvent, Spool, SpoolError, SpoolFull
from mailhooks.trial import send_sample

_log = log.get("mailhooks.app")
# Distinct (source, kind) labels of skipped records at most: a client cannot grow the metrics.
MAX_SKIP_KINDS: Final = 100


class Service:
    def __init__(
        self, settings: Settings, metrics: Metrics, spool: Spool, current: LiveRef,
        reloader: Reloader, dispatcher: Dispatcher, authority: Authority, shares: ShareKeeper,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.spool = spool
        self.current = current
        self.reloader = reloader
        self.dispatcher = dispatcher
        self.authority = authority
        self.shares = shares
        self.started_at = time.time()
        # Set when shutdown begins: intake answers 503 from then on.
        self.stopping = False
        self._skip_kinds_logged: set[tuple[str, str]] = set()

    def note_skipped(self, source: str, skipped: Sequence[Skipped]) -> None:
        """Records a source did not turn into events: counted by kind, and logged once
        per kind (a stream of one unknown record type is one line, not one per record).
        Kinds are a metric label: past MAX_SKIP_KINDS, any new one counts as `other`."""
        for record in skipped:
            kind = record.kind
            seen = self._skip_kinds_logged
            if (source, kind) not in seen and len(seen) >= MAX_SKIP_KINDS:
                kind = "other"
            if (source, kind) not in seen:
                seen.add((source, kind))
                _log.info("source_record_skipped", source=source, kind=kind,
                          detail=record.detail, hint="counted from now on, not logged again")
            self.metrics.source_skipped.labels(source, kind).inc()

    def webhook(self, webhook_id: str) -> LiveWebhook | None:
        return self.current.webhook(webhook_id)

    # -- intake ----------------------------------------------------------------------------

    async def accept(self, events: Sequence[Event]) -> int:
        """Match and spool events; returns how many were new. Raises SpoolError."""
        if self.dispatcher.recorder.failing_since is not None:
            raise SpoolError(f"outcomes of deliveries cannot be written: {self.dispatcher.recorder.error}")
        match = self.current.now.matcher.match
        received_at = datetime.now(UTC)
        batch = []
        targets: set[str] = set()
        by_name: dict[str, int] = {}  # a plain dict: a Counter costs more per request
        for event in events:
            event.fill_in(received_at)
            matched = match(event)
            targets.update(matched)
            by_name[event.event] = by_name.get(event.event, 0) + 1
            batch.append(NewEvent(event.event_id or "", event.event, event.message_id,
                                  event.payload_json(), matched))
        hand_over = self.dispatcher.wants(targets)
        try:
            added = await self.spool.add(batch, hand_over=hand_over)
        except SpoolFull:
            # Full: make the webhooks that are over their share give room, then try once
            # more; only a spool full of what it must keep answers 503 (SPEC §5).
            if not await self.shares.sweep(whole=True):
                raise
            added = await self.spool.add(batch, hand_over=hand_over)
        for name, count in by_name.items():
            self.metrics.received_by(name).inc(count)
        # Per request, so debug (see retry.Settler); the metrics count every event.
        if log.debug_enabled():
            _log.debug("events_accepted", events=len(events), spooled=added.events,
                       duplicates=len(events) - added.events, deliveries=len(added.deliveries))
        self.dispatcher.wake(targets, added.deliveries)
        return added.events

    # -- operations ------------------------------------------------------------------------

    async def reload(self, reason: str) -> dict[str, Any]:
        systemd.reloading()
        try:
            try:  # the API's tokens are secrets too: rotated ones apply on reload
                self.authority.load_tokens(SecretSources.from_process(self.settings.secrets.dirs))
            except ValueError as error:
                _log.error("tokens_not_reloaded", error=str(error), kept="the previous tokens")
            return await self.reloader.reload(reason)
        finally:
            systemd.ready(await self.summary())

    async def replay(self, delivery_ids: Sequence[int], webhook_id: str | None,
                     pending_now: bool = False) -> tuple[int, int, list[str]]:
        """Re-queue failed deliveries within each webhook's cap of pending ones (SPEC §5):
        how many were re-queued, how many were left failed for want of room (a replay
        once the pending ones have gone out takes those), and which of their webhooks are
        paused (nothing goes to those until they are resumed)."""
        caps, default_cap = await self.shares.caps()
        webhooks, left = await self.spool.replay(delivery_ids, webhook_id, pending_now,
                                                 caps, default_cap)
        _log.info("replay", deliveries=len(webhooks), left_failed=left, webhook=webhook_id,
                  now=pending_now)
        self.dispatcher.wake(set(webhooks))
        touched = set(webhooks) | ({webhook_id} if webhook_id is not None else set())
        paused = sorted(key for key in touched if self.dispatcher.health.is_paused(key))
        return len(webhooks), left, paused

    def resume(self, webhook_id: str) -> bool | None:
        """Resume a webhook the daemon paused: True, False when it was not paused, None
        when no such webhook runs."""
        if self.webhook(webhook_id) is None:
            return None
        return self.dispatcher.resume(webhook_id, "resumed by an operator")

    async def deliveries(self, state: str | None, webhook_id: str | None,
                         limit: int) -> list[DeliveryRecord]:
        return await self.spool.deliveries(state, webhook_id, limit)

    async def test_webhook(self, webhook_id: str, event_name: str | None) -> dict[str, Any] | None:
        live = self.webhook(webhook_id)
        return None if live is None else await send_sample(live, event_name)

    # -- reports ---------------------------------------------------------------------------

    def webhooks_report(self) -> dict[str, Any]:
        live = self.current.now
        errors_by_file: dict[str, list[str]] = {}
        for problem in live.problems:
            errors_by_file.setdefault(problem.file, []).append(str(problem))
        listed = []
        for key, hook in live.webhooks.items():
            model = hook.loaded.webhook
            listed.append({
                "id": key,
                "name": model.name,
                "status": model.status,
                "events": model.events,
                "channel": model.channel.type,
                "endpoint": model.channel.endpoint(),
                "file": str(hook.loaded.path),
                "state": (
                    "paused" if self.dispatcher.health.is_paused(key)
                    else "stale" if key in live.stale else "running"
                ),
                "errors": errors_by_file.get(str(hook.loaded.path), []),
            })
        return {
            "webhooks": listed,
            "count": len(listed),
            "limit": self.settings.limits.max_webhooks,
            "config_ok": live.ok,
            "errors": [str(problem) for problem in live.problems],
            "last_reload": self.reloader.last_report,
        }

    async def status_report(self) -> dict[str, Any]:
        stats = await self.spool.stats()
        live = self.current.now
        failing = []
        health = self.dispatcher.health
        for key in sorted(set(self.dispatcher.lanes) | set(health.states)):
            lane = self.dispatcher.lanes.get(key)
            state = health.states.get(key)
            if (lane is None or not lane.breaker.failures) and state is None:
                continue
            failing.append({
                "webhook": key,
                "consecutive_failures": lane.breaker.failures if lane else 0,
                "circuit_open": lane.breaker.is_open if lane else False,
                "failing_since": state.failing_since if state else None,
                "paused": state is not None and state.paused_at is not None,
                "pending": stats.pending_by_webhook.get(key, 0),
            })
        return {
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "config": {
                "ok": live.ok, "webhooks": len(live.webhooks),
                "limit": self.settings.limits.max_webhooks,
                "directory": str(self.settings.webhooks_dir.absolute()),
                "revision": self.reloader.revision.as_json() if self.reloader.revision else None,
                "read_revision": (self.reloader.read_revision.as_json()
                                  if self.reloader.read_revision else None),
                "errors": [str(problem) for problem in live.problems],
                "last_reload": self.reloader.last_report,
            },
            "queue": {
                "pending": stats.pending, "failed": stats.failed,
                "oldest_pending_seconds": (
                    None if stats.oldest_pending_at is None
                    else round(time.time() - stats.oldest_pending_at, 1)
                ),
                "in_flight": self.dispatcher.in_flight(),
                "spool_bytes": stats.size_bytes,
                "outcomes_unrecorded_since": self.dispatcher.recorder.failing_since,
            },
            "failing": failing,
            "secrets": "scoped" if grants.scoped(self.settings) else "not scoped",
        }

    async def summary(self) -> str:
        stats = await self.spool.stats()
        live = self.current.now
        state = "ok" if live.ok else f"{len(live.problems)} config error(s)"
        return f"{len(live.webhooks)} webhooks ({state}), {stats.pending} pending, {stats.failed} failed"

    async def metrics_text(self) -> bytes:
        self.metrics.observe_stats(await self.spool.stats())
        return self.metrics.render()
