"""The real daemon as systemd runs it: sd_notify on a datagram socket, and socket
activation with a restart while a client keeps posting."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from tests.utils import DaemonProcess, Receiver, event, wait_until

# Puts the inherited socket at fd 3 and sets LISTEN_PID to its own pid, as systemd does
# between fork and exec, then becomes the daemon.
ACTIVATE = """
import os, sys
os.dup2(int(os.environ.pop("MH_SOCKET_FD")), 3)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="api")
os.execv(sys.executable, [sys.executable, "-m", "mailhooks", *sys.argv[1:]])
"""


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def seen(self, text: str) -> bool:
        return any(text in message for message in self.drain())


async def test_sd_notify_ready_reloading_stopping_status_and_watchdog(
    daemon: DaemonProcess, receiver: Receiver, short_tmp: Path
) -> None:
    notify = NotifySocket(short_tmp / "notify")
    daemon.env.update(NOTIFY_SOCKET=str(short_tmp / "notify"), WATCHDOG_USEC="400000")
    daemon.add_webhook("crm", receiver.url)
    await daemon.start(wait=False)
    await wait_until(lambda: notify.seen("READY=1"), what="READY=1")
    # READY only once it listens and has loaded its webhooks.
    assert await daemon.healthy()
    ready = next(m for m in notify.messages if "READY=1" in m)
    assert "STATUS=1 webhooks (ok), 0 pending, 0 failed" in ready
    await wait_until(lambda: notify.drain().count("WATCHDOG=1") >= 2, what="watchdog pings")
    notify.messages.clear()
    await daemon.send_signal(signal.SIGHUP)
    await wait_until(lambda: notify.seen("READY=1"), what="READY=1 after the reload")
    reloading = [m for m in notify.messages if "RELOADING=1" in m]
    assert reloading and "MONOTONIC_USEC=" in reloading[0]
    assert notify.messages.index(reloading[0]) < next(
        index for index, m in enumerate(notify.messages) if "READY=1" in m
    )
    assert await daemon.stop() == 0
    assert notify.seen("STOPPING=1")


async def test_socket_activation_loses_nothing_across_a_restart(
    daemon: DaemonProcess, receiver: Receiver, short_tmp: Path
) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(daemon.socket))
    listener.listen(128)
    daemon.add_webhook("crm", receiver.url)
    daemon.write_config()
    (short_tmp / "activate.py").write_text(ACTIVATE)

    async def start() -> asyncio.subprocess.Process:
        log = daemon.log_path.open("ab")
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(short_tmp / "activate.py"), "serve",
            "--config", str(daemon.config_path),
            stdout=log, stderr=log, pass_fds=(listener.fileno(),),
            env={**daemon.env, "MH_SOCKET_FD": str(listener.fileno())},
        )
        log.close()
        return process

    first = await start()
    accepted: dict[str, int] = {}
    stop = asyncio.Event()

    async def client() -> None:
        number = 0
        connector = aiohttp.UnixConnector(path=str(daemon.socket), force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            while not stop.is_set() or number < 20:
                body = event(number)
                while True:  # a sender retries the same event_id until it is taken
                    try:
                        async with session.post("http://mailhooks/events", json=body) as answer:
                            if answer.status == 202:
                                data = await answer.json()
                                accepted[body["event_id"]] = data["accepted"] - data["duplicates"]
                                break
                            assert answer.status == 503, answer.status
                    except aiohttp.ClientConnectionError:
                        pass
                    await asyncio.sleep(0.01)
                number += 1

    posting = asyncio.create_task(client())
    try:
        await wait_until(lambda: len(accepted) >= 20, what="events before the restart")
        first.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(first.wait(), 20) == 0
        before_second = len(accepted)
        second = await start()
        await wait_until(lambda: len(accepted) >= before_second + 20, what="events after it")
        stop.set()
        await asyncio.wait_for(posting, 30)
    finally:
        stop.set()
        posting.cancel()
    await wait_until(lambda: {e["event_id"] for e in receiver.events()} >= set(accepted),
                     what="every accepted event delivered")
    delivered = [e["event_id"] for e in receiver.events()]
    assert len(delivered) == len(set(delivered)), "an event was spooled or delivered twice"
    assert "socket_activation" in daemon.logs_text()
    second.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(second.wait(), 20) == 0
    listener.close()
    print(f"{len(accepted)} events accepted once each across a restart on the same socket")
