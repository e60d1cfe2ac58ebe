"""What the channels of one daemon share: its settings, one HTTP session per channel type
(sized by the type's own `connections`), and gauges a channel may report to."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import aiohttp

from mailhooks.channels.egress import make_session
from mailhooks.settings import Settings


class ChannelContext:
    def __init__(
        self, settings: Settings, gauges: Mapping[str, Callable[[float], None]] | None = None
    ) -> None:
        self.settings = settings
        # e.g. "pushover_remaining": the quota Pushover reports on every answer.
        self.gauges: dict[str, Callable[[float], None]] = dict(gauges or {})
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, channel_type: str, connections: int) -> aiohttp.ClientSession:
        """The channel type's session, made on first use (on the running loop): each type
        has its own pool of `connections`, so Pushover's two connections are never taken
        by a busy web endpoint, and the other way round."""
        session = self._sessions.get(channel_type)
        if session is None or session.closed:
            session = self._sessions[channel_type] = make_session(self.settings, connections)
        return session

    def report(self, gauge: str, value: float) -> None:
        setter = self.gauges.get(gauge)
        if setter is not None:
            setter(value)

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
