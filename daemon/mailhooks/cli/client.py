"""Talking to the running daemon over its UNIX socket, for send/status/deliveries/replay/test."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from mailhooks.cli.common import CommandError


def call(
    socket: Path, method: str, path: str, *, body: bytes | None = None,
    content_type: str = "application/json", timeout: float = 60.0,
) -> tuple[int, Any]:
    """One request to the daemon; (status, JSON answer). Unreachable, or a role this user
    lacks (SPEC §4a) → CommandError, with what to do."""
    status, answer = asyncio.run(_call(socket, method, path, body, content_type, timeout))
    if status in (401, 403):
        reason = answer.get("error") if isinstance(answer, dict) else None
        raise CommandError(f"the daemon refused: {reason or status}")
    return status, answer


async def _call(
    socket: Path, method: str, path: str, body: bytes | None, content_type: str, timeout: float
) -> tuple[int, Any]:
    connector = aiohttp.UnixConnector(path=str(socket))
    try:
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as session, session.request(
            method, f"http://mailhooks{path}", data=body,
            headers={"Content-Type": content_type} if body is not None else None,
        ) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text) if text else None
            except json.JSONDecodeError:
                return response.status, text
    except (aiohttp.ClientConnectorError, FileNotFoundError, ConnectionRefusedError) as error:
        raise CommandError(
            f"cannot reach the daemon at {socket}: {getattr(error, 'strerror', None) or error}"
            " (is mailhooks serve running? use --socket or the config's socket)"
        ) from None
    except TimeoutError:
        raise CommandError(f"the daemon at {socket} did not answer within {timeout:.0f}s") from None
    except aiohttp.ClientError as error:
        raise CommandError(f"request to the daemon failed: {error}") from None
