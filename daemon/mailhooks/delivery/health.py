"""[deliver] What the daemon decides about a webhook that only fails (SPEC §5): since
when it has, and pausing it after `pause_after` (3 days by default): no more attempts,
its file untouched, until `mailhooks resume ID` or a change to its file.

`status: inactive` is the repository's word (the webhook takes no events); `paused` is
the daemon's (its events are still spooled, within its share, and sent once it resumes).
Kept in the spool, so a daily restart does not reset the clock.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable

from mailhooks import log
from mailhooks.channels.base import Outcome
from mailhooks.live import LiveSet, LiveWebhook
from mailhooks.metrics import Metrics
from mailhooks.settings import Settings
from mailhooks.spool import Spool, SpoolError, WebhookState

_log = log.get("mailhooks.dispatch")


class Health:
    def __init__(self, spool: Spool, settings: Settings, metrics: Metrics) -> None:
        self.spool = spool
        self.settings = settings
        self.metrics = metrics
        self.states: dict[str, WebhookState] = {}
        self._writes: set[asyncio.Task[None]] = set()

    async def load(self) -> None:
        self.states = await self.spool.webhook_states()
        for webhook_id, state in self.states.items():
            if state.paused_at is not None:
                self.metrics.paused.labels(webhook_id).set(1)

    def paused_until(self, webhook_id: str) -> float:
        """`inf` while the webhook is paused, else 0."""
        state = self.states.get(webhook_id)
        return math.inf if state is not None and state.paused_at is not None else 0.0

    def is_paused(self, webhook_id: str) -> bool:
        return self.paused_until(webhook_id) > 0

    def observe(self, live: LiveWebhook, outcome: Outcome, now: float) -> None:
        """One attempt's outcome: a success ends a failing spell; a failure starts one, and
        pauses the webhook once the spell is `pause_after` long."""
        state = self.states.get(live.id, WebhookState())
        if outcome.ok:
            if state.failing_since is not None:
                self._set(live.id, WebhookState())
            return
        if outcome.hold_until is not None:
            return  # a quota or a rate limit: not the endpoint failing
        if state.failing_since is None:
            self._set(live.id, WebhookState(failing_since=now))
            return
        limit = live.channel.pause_after or self.settings.pause_after
        if state.paused_at is None and now - state.failing_since >= limit:
            self._set(live.id, WebhookState(state.failing_since, now, live.loaded.digest))
            self.metrics.paused.labels(live.id).set(1)
            _log.warning("webhook_paused", webhook=live.id, failing_for_s=round(now - state.failing_since),
                         pause_after=limit, error=outcome.error,
                         hint=f"mailhooks resume {live.id}, or change its file")

    def resume(self, webhook_id: str, reason: str) -> bool:
        """Resume a paused webhook; False when it was not paused."""
        state = self.states.get(webhook_id)
        if state is None or state.paused_at is None:
            return False
        self._set(webhook_id, WebhookState())  # a new spell starts at the next failure
        self.metrics.paused.labels(webhook_id).set(0)
        _log.info("webhook_resumed", webhook=webhook_id, reason=reason)
        return True

    def resume_changed(self, live: LiveSet) -> list[str]:
        """Paused webhooks whose file changed since they were paused: resumed."""
        return [
            webhook_id for webhook_id, hook in live.webhooks.items()
            if (state := self.states.get(webhook_id)) is not None and state.paused_at is not None
            and state.paused_digest != hook.loaded.digest and self.resume(webhook_id, "file changed")
        ]

    def forget(self, webhook_ids: Iterable[str]) -> None:
        for webhook_id in webhook_ids:
            if webhook_id in self.states:
                self._set(webhook_id, WebhookState())

    def _set(self, webhook_id: str, state: WebhookState) -> None:
        if state == WebhookState():
            self.states.pop(webhook_id, None)
        else:
            self.states[webhook_id] = state
        task = asyncio.ensure_future(self._save(webhook_id, state))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _save(self, webhook_id: str, state: WebhookState) -> None:
        try:
            await self.spool.save_webhook_state(webhook_id, state)
        except SpoolError as error:  # kept in memory; written again at the next change
            _log.error("webhook_state_not_saved", webhook=webhook_id, error=str(error))

