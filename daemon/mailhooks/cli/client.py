"""Talking to the running daemon over its UNIX socket: `call` for the commands that ask it
one thing (send/status/deliveries/replay/test), `request` on a kept session for those
that post to it for as long as they run (`mailhooks ingest`)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from mailhooks.cli.common import CommandError


class Unreachable(Exception):
    """The daemon could not be asked: no socket, nobody listening, no answer in time, or
    the connection broke. The message says which, and what to do."""


@dataclass(frozen=True)
class Reply:
    """The daemon's answer: its status, its body as JSON (as text when it is none), and
    the seconds its `Retry-After` asks for (a 503's)."""

    status: int
    answer: Any
    retry_after: float | None = None


def call(
    socket: Path, method: str, path: str, *, body: bytes | None = None,
    content_type: str = "application/json", timeout: float = 60.0,
) -> tuple[int, Any]:
    """One request to the daemon; (status, JSON answer). Unreachable, or a role this user
    lacks (SPEC §4a) → CommandError, with what to do."""
    try:
        reply = asyncio.run(_call(socket, method, path, body, content_type, timeout))
    except Unreachable as error:
        raise CommandError(str(error)) from None
    status, answer = reply.status, reply.answer
    if status in (401, 403):
        reason = answer.get("error") if isinstance(answer, dict) else None
        raise CommandError(f"the daemon refused: {reason or status}")
    return status, answer


def session(socket: Path) -> aiohttp.ClientSession:
    """A session whose connections go to the daemon's socket, kept alive between requests."""
    return aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket)))


async def request(
    client: aiohttp.ClientSession, socket: Path, method: str, path: str, *, body: bytes | None = None,
    content_type: str = "application/json", timeout: float = 60.0,
) -> Reply:
    """One request on `client` (a `session` for `socket`). `Unreachable` when no answer
    came."""
    try:
        async with client.request(
            method, f"http://mailhooks{path}", data=body,
            headers={"Content-Type": content_type} if body is not None else None,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            text = await response.text()
            try:
                answer = json.loads(text) if text else None
            except json.JSONDecodeError:
                answer = text
            return Reply(response.status, answer, _seconds(response.headers.get("Retry-After")))
    except (aiohttp.ClientConnectorError, FileNotFoundError, ConnectionRefusedError) as error:
        raise Unreachable(
            f"cannot reach the daemon at {socket}: {getattr(error, 'strerror', None) or error}"
            " (is mailhooks serve running? use --socket or the config's socket)"
        ) from None
    except TimeoutError:
        raise Unreachable(f"the daemon at {socket} did not answer within {timeout:.0f}s") from None
    except aiohttp.ClientError as error:
        raise Unreachable(f"request to the daemon failed: {error}") from None


def _seconds(value: str | None) -> float | None:
    """A `Retry-After` of seconds (the daemon never sends an HTTP date)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < 86400 else None


async def _call(
    socket: Path, method: str, path: str, body: bytes | None, content_type: str, timeout: float
) -> Reply:
    async with session(socket) as client:
        return await request(client, socket, method, path, body=body, content_type=content_type,
                             timeout=timeout)
