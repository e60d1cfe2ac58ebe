"""[in] The API's connections: no client can keep the daemon's descriptors (SPEC §4a).

aiohttp closes an idle keep-alive connection, but not one that sends half its headers
and then nothing. Here a request's head must arrive within HEAD_TIMEOUT of its first
byte (or of the connection), idle connections close after KEEPALIVE_TIMEOUT, and the
connections of a server are capped: when the cap is reached, the connection idle the
longest (a half-open one first of all) is closed to make room, so a normal client gets
in while slow ones are cycled out.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from mailhooks import log
from mailhooks.roles import Peer, peer_of

HEAD_TIMEOUT: Final = 10.0
KEEPALIVE_TIMEOUT: Final = 75.0

_log = log.get("mailhooks.server")


class GuardedHandler(RequestHandler):
    """aiohttp's connection handler, with a deadline for each request's head and the
    peer's credentials read once, when the connection is made."""

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.peer = Peer(unix=False)
        self.last_head = 0.0
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.peer = peer_of(transport.get_extra_info("socket"))
        self.last_head = self._loop.time()
        self._start_head_timer()
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:
            self.last_head = self._loop.time()
            self._stop_head_timer()
        elif data and self._head_timer is None and self.idle:
            self._start_head_timer()  # the first bytes of the next request's head

    @property
    def idle(self) -> bool:
        """No request being handled or waiting to be."""
        return not self._request_in_progress and not self._messages

    def _start_head_timer(self) -> None:
        self._head_timer = self._loop.call_later(HEAD_TIMEOUT, self._head_overdue)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self) -> None:
        self._head_timer = None
        if self.idle:
            _log.info("connection_closed", reason="request head not received in time",
                      timeout=HEAD_TIMEOUT)
            self.force_close()


class GuardedServer(web.Server):
    """`web.Server` making `GuardedHandler`s, at most `max_connections` at once."""

    def __init__(self, *args: Any, max_connections: int, **kwargs: Any) -> None:
        super().__init__(*args, keepalive_timeout=KEEPALIVE_TIMEOUT, **kwargs)
        self.max_connections = max_connections
        self.evicted = 0

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        if len(self._connections) >= self.max_connections and not self._make_room():
            # Every connection is busy with a request: this one waits for none of them.
            transport.close()
            return
        super().connection_made(handler, transport)

    def _make_room(self) -> bool:
        idle = [handler for handler in self._connections
                if isinstance(handler, GuardedHandler) and handler.idle]
        if not idle:
            return False
        oldest = min(idle, key=lambda handler: handler.last_head)
        oldest.force_close()
        self._connections.pop(oldest, None)
        self.evicted += 1
        if self.evicted == 1 or self.evicted % 1000 == 0:  # a flood logs a line per thousand
            _log.warning("connections_at_limit", limit=self.max_connections, evicted=self.evicted)
        return True
