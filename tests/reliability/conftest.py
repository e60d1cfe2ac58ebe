"""Shared helpers for the reliability tests: receivers on any loopback address, raw log
lines, delivery listings, free ports and percentiles."""

from __future__ import annotations

import math
import socket
from typing import Any

from tests.utils import DaemonProcess, Receiver

# Receiver takes any loopback host (`::1`, …); the name says why these tests use it.
HostReceiver = Receiver


def closed_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on (bound once, then released)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


def log_lines(daemon: DaemonProcess, name: str, **fields: Any) -> list[dict[str, Any]]:
    """The daemon's JSON log lines for `name` whose fields equal `fields`."""
    return [
        line for line in daemon.logs()
        if line.get("event") == name and all(line.get(k) == v for k, v in fields.items())
    ]


async def deliveries(daemon: DaemonProcess, **query: str | int) -> list[dict[str, Any]]:
    """`GET /deliveries` with `query` (limit 10000 unless given)."""
    params = {"limit": 10000, **query}
    path = "/deliveries?" + "&".join(f"{key}={value}" for key, value in params.items())
    status, answer = await daemon.request("GET", path)
    assert status == 200, answer
    rows: list[dict[str, Any]] = answer["deliveries"]
    return rows


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` in 0..1) of `values`."""
    ordered = sorted(values)
    rank = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[rank]
