"""For the ingest tests: a stand-in daemon (a UNIX socket whose answers a test sets, and
which keeps every body it was sent), and `mailhooks ingest` as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.utils import Receiver

Answer = Callable[[bytes], web.Response]


def accept(body: bytes) -> web.Response:
    count = len([line for line in body.splitlines() if line.strip()])
    return web.json_response({"accepted": count, "duplicates": 0}, status=202)


@dataclass
class StandIn:
    """Answers each POST with `answer(body)` (202 by default) and keeps the bodies."""

    socket: Path
    answer: Answer = accept
    bodies: list[bytes] = field(default_factory=list)
    runner: web.ServerRunner | None = None

    async def handle(self, request: web.BaseRequest) -> web.Response:
        body = await request.read()
        self.bodies.append(body)
        return self.answer(body)

    async def start(self) -> StandIn:
        self.runner = web.ServerRunner(web.Server(self.handle))
        await self.runner.setup()
        await web.UnixSite(self.runner, str(self.socket)).start()
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def items(self) -> list[Any]:
        """Every item of every body, NDJSON or a JSON array."""
        found: list[Any] = []
        for body in self.bodies:
            if body.startswith(b"["):
                found.extend(json.loads(body))
            else:
                found.extend(json.loads(line) for line in body.splitlines() if line.strip())
        return found


@pytest.fixture
async def stand_in(short_tmp: Path) -> AsyncIterator[StandIn]:
    server = await StandIn(short_tmp / "d.sock").start()
    yield server
    await server.stop()


class Ingester:
    """`mailhooks ingest ARGS` as a process of its own: its stdin is a pipe a test writes
    to, its stderr lines are kept as they come."""

    def __init__(self, *args: str, env: dict[str, str] | None = None,
                 user: tuple[int, int] | None = None, python: str = sys.executable) -> None:
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.user = user
        self.python = python
        self.stderr: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> Ingester:
        ids: dict[str, Any] = {}
        if self.user is not None:
            ids = {"user": self.user[0], "group": self.user[1], "extra_groups": []}
        self.process = await asyncio.create_subprocess_exec(
            self.python, "-m", "mailhooks", "ingest", *self.args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=self.env, **ids,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for line in self.process.stderr:
            self.stderr.append(line.decode(errors="replace").rstrip("\n"))

    def said(self, text: str) -> bool:
        return any(text in line for line in self.stderr)

    async def write(self, data: bytes) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(data)
        await self.process.stdin.drain()

    async def close(self, timeout: float = 60) -> int:
        """Close stdin and wait for the exit code."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.close()
        return await self.wait(timeout)

    async def stop(self, timeout: float = 60) -> int:
        """SIGTERM, and the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await self.wait(timeout)

    async def wait(self, timeout: float = 60) -> int:
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, timeout)
        return code

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


def delivered_ids(receiver: Receiver) -> Counter[str]:
    """How many times each event_id reached the receiver."""
    return Counter(event["event_id"] for event in receiver.events())
