"""[deliver] The retry policy, written once for every channel: what an attempt's outcome
means for each of its deliveries (delivered, retried when, or failed), backoff with
jitter and `Retry-After`, holds, and the circuit breaker of a lane.

A channel only says whether a failure may be retried (`Outcome.retry`); when is decided
here, as Alertmanager's retry stage decides it for all its integrations.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from mailhooks import log
from mailhooks.channels.base import Outcome
from mailhooks.delivery.health import Health
from mailhooks.live import LiveWebhook
from mailhooks.metrics import Metrics
from mailhooks.settings import Settings
from mailhooks.spool import AttemptResult, Delivery

JITTER: Final = 0.2
BREAKER_THRESHOLD: Final = 5
BREAKER_BASE_COOLDOWN: Final = 10.0
BREAKER_MAX_COOLDOWN: Final = 300.0

_log = log.get("mailhooks.dispatch")


def backoff(attempts: int, schedule: Sequence[float], retry_after: float | None) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones; None when exhausted."""
    if attempts > len(schedule):
        return None
    base = schedule[attempts - 1]
    delay = base * random.uniform(1 - JITTER, 1 + JITTER)
    return max(delay, retry_after or 0.0)


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


class Settler:
    """Turns one attempt's outcome into each delivery's new state: logged, counted, fed
    to the lane's breaker; holds a destination when the outcome asks for it."""

    def __init__(self, settings: Settings, metrics: Metrics, health: Health) -> None:
        self.settings = settings
        self.metrics = metrics
        self.health = health
        # Unix time until which deliveries to a destination (a sender's rate_key) wait.
        self.holds: dict[str, float] = {}

    def held_until(self, live: LiveWebhook) -> float:
        return max(self.holds.get(live.sender.rate_key, 0.0), self.holds.get(_service_key(live), 0.0))

    def settle(
        self, live: LiveWebhook, breaker: Breaker, deliveries: list[Delivery], outcome: Outcome,
        duration_ms: float, started: float, batch: str | None = None,
    ) -> list[AttemptResult]:
        """Each delivery's new state. A batch (`batch` is its webhook-id) is settled
        whole: one jitter draw, one next attempt, and its id kept, so the retry goes out
        with the same members under the same id (SPEC §5)."""
        now = time.time()
        schedule = live.retry_schedule
        if schedule is None:
            schedule = self.settings.retry_schedule
        if outcome.hold_until is not None:
            # A spent quota, a 429, or a success that used the last request of a window:
            # nothing goes to this destination before then.
            key = _service_key(live) if outcome.hold_service else live.sender.rate_key
            self.holds[key] = max(self.holds.get(key, 0.0), outcome.hold_until)
            if not outcome.ok:
                _log.warning("channel_held", webhook=live.id, channel=live.kind.type,
                             until=outcome.hold_until, reason=outcome.error)
        results = []
        drawn: dict[int, float | None] = {}  # one delay per attempt count: a batch shares it
        for delivery in deliveries:
            attempt = delivery.attempts + 1
            if outcome.ok:
                state, next_at = "delivered", now
                self.metrics.end_to_end.observe(max(0.0, now - delivery.created_at))
            elif outcome.hold_until is not None:
                # Not the endpoint's fault: wait for the quota without spending an attempt.
                state, next_at, attempt = "pending", outcome.hold_until, delivery.attempts
            else:
                if attempt not in drawn:
                    drawn[attempt] = (backoff(attempt, schedule, outcome.retry_after)
                                      if outcome.retry else None)
                delay = drawn[attempt]
                state, next_at = ("failed", now) if delay is None else ("pending", now + delay)
            results.append(AttemptResult(delivery.id, state, attempt, next_at,
                                         outcome.status, outcome.error,
                                         None if outcome.ok else batch))
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
        self._breaker(breaker, live.id, outcome, now, started)
        self.health.observe(live, outcome, now)
        return results

    def _breaker(
        self, breaker: Breaker, webhook_id: str, outcome: Outcome, now: float, started: float
    ) -> None:
        if outcome.ok:
            if breaker.success():
                self.metrics.circuit_open.labels(webhook_id).set(0)
                _log.info("circuit_closed", webhook=webhook_id)
            return
        if outcome.retry and outcome.hold_until is None and breaker.failure(now, started):
            self.metrics.circuit_open.labels(webhook_id).set(1)
            _log.warning(
                "circuit_opened", webhook=webhook_id, failures=breaker.failures,
                probe_in=round(breaker.cooldown, 1), error=outcome.error,
            )


def _service_key(live: LiveWebhook) -> str:
    """The hold key of a whole service: no sender's `rate_key` (each has a ':')."""
    return f"service {live.kind.type}"
