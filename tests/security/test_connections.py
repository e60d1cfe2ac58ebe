"""No client can take the daemon's descriptors (SPEC §4a).

Before: 20 connections that sent half their headers were all still open after 100 s
(aiohttp keeps an idle connection an hour by default), there was no cap on connections,
and the unit set no LimitNOFILE: running out of descriptors would stop the socket, the
spool and the deliveries with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from pathlib import Path

import pytest
from aiohttp import web

from mailhooks.connections import HEAD_TIMEOUT
from tests.utils import REPO, DaemonProcess, event, wait_until

HALF_OPEN = 500
CAP = 128


def _open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _connect(socket_path: Path) -> socket.socket:
    """A connected socket, connecting as curl or an MTA does: a blocking connect waits for
    room in the listen backlog. asyncio's non-blocking connect takes the backlog's EAGAIN
    for success on a UNIX socket and hands back a socket that was never connected, which
    made this test fail under load on CI when the daemon fell behind accepting 500
    connections."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await asyncio.to_thread(sock.connect, str(socket_path))
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def _half_open(socket_path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_unix_connection(sock=await _connect(socket_path))
    writer.write(b"POST /events HTTP/1.1\r\nHost: mailhooks\r\nContent-Ty")  # and then nothing
    # Closed already (evicted to make room): as good as closed later.
    with contextlib.suppress(OSError):
        await writer.drain()
    return reader, writer


async def _post_event(socket_path: Path, number: int) -> bytes:
    """POST one event on a connection of its own; the answer's status line."""
    body = json.dumps(event(number)).encode()
    reader, writer = await asyncio.open_unix_connection(sock=await _connect(socket_path))
    try:
        writer.write(b"POST /events HTTP/1.1\r\nHost: mailhooks\r\n"
                     b"Content-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.read()
    finally:
        writer.close()
    return answer.split(b"\r\n", 1)[0]


async def _closed(reader: asyncio.StreamReader) -> bool:
    """Whether the daemon closed the connection (an unread head makes the close a reset)."""
    if reader.at_eof():
        return True
    try:
        async with asyncio.timeout(0.01):
            await reader.read()
    except TimeoutError:
        return False
    except OSError:  # reset, broken pipe, or ENOTCONN when the write already met the close
        return True
    return True


async def test_half_open_connections_neither_lock_out_clients_nor_stay(daemon: DaemonProcess) -> None:
    daemon.config["limits"] = {"max_connections": CAP}
    await daemon.start()
    assert daemon.process is not None
    before = _open_descriptors(daemon.process.pid)
    slow = [await _half_open(daemon.socket) for _ in range(HALF_OPEN)]
    try:
        # A normal client keeps getting its events in while they hang there.
        for number in range(20):
            status_line = await _post_event(daemon.socket, number)
            assert status_line.startswith(b"HTTP/1.1 202 "), status_line
        assert _open_descriptors(daemon.process.pid) <= before + CAP + 8

        async def all_closed() -> bool:
            for reader, _ in slow:
                if not await _closed(reader):
                    return False
            return True

        # Closed by the cap as newer ones came, or by the head deadline.
        await wait_until(all_closed, HEAD_TIMEOUT + 10, "every half-open connection closed")
    finally:
        for _, writer in slow:
            writer.close()
    logs = daemon.logs_text()
    assert '"connections_at_limit"' in logs  # the oldest idle made room for newer ones
    assert '"connection_closed"' in logs  # and the rest met their head deadline
    _, metrics = await daemon.request("GET", "/metrics")
    assert "mailhooks_events_received_total" in metrics


def test_the_unit_raises_the_descriptor_limit() -> None:
    unit = (REPO / "systemd" / "mailhooks.service").read_text()
    assert "\nLimitNOFILE=65536\n" in unit


async def test_an_idle_keep_alive_connection_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    # aiohttp keeps an idle connection an hour by default; SPEC §4a says 75 s. The server
    # reads the constant when it is made, so a short one shows the close without waiting.
    from mailhooks import connections
    assert connections.KEEPALIVE_TIMEOUT == 75
    monkeypatch.setattr(connections, "KEEPALIVE_TIMEOUT", 0.3)

    async def answer(_request: web.BaseRequest) -> web.Response:
        return web.Response(text="ok")

    server = connections.GuardedServer(answer, max_connections=8)
    listening = await asyncio.get_running_loop().create_server(server, "127.0.0.1", 0)
    try:
        port = listening.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"close" not in head.lower()
        await reader.readexactly(2)  # the body: "ok"

        async def closed() -> bool:
            return await _closed(reader)

        await wait_until(closed, 10, "the idle connection closed by the server")
        writer.close()
    finally:
        listening.close()
        await server.shutdown(0.1)
