"""[deliver] A service's pace: how soon the next request to a destination may go.

Chat services document a rate per destination (Slack about one message a second per
webhook, Telegram one a second per chat and twenty a minute per group); a channel
declares it (`ChannelKind.rate`) and the lane waits here before each request, so the
service never has to answer 429. Destinations are senders' `rate_key`s: two webhooks
posting to the same chat share its pace.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from mailhooks.channels.base import Rate

MINUTE = 60.0


@dataclass
class _Bucket:
    tokens: float
    updated: float
    # Send times of the last minute, for a per-minute limit.
    recent: deque[float] = field(default_factory=deque)


class Pacer:
    """Token buckets, one per destination."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def delay(self, key: str, rate: Rate, now: float) -> float:
        """Seconds to wait before a request to `key`; 0 means go now (and the request is
        counted)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(rate.burst), now)
        bucket.tokens = min(float(rate.burst), bucket.tokens + (now - bucket.updated) * rate.per_second)
        bucket.updated = now
        while bucket.recent and bucket.recent[0] <= now - MINUTE:
            bucket.recent.popleft()
        wait = 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / rate.per_second
        if rate.per_minute is not None and len(bucket.recent) >= rate.per_minute:
            wait = max(wait, bucket.recent[0] + MINUTE - now)
        if wait > 0:
            return wait
        bucket.tokens -= 1
        if rate.per_minute is not None:
            bucket.recent.append(now)
        return 0.0
