"""The web channel alone: CPU per request of `WebSender.send` (signed, with its timeout,
headers and answer excerpt) against a bare aiohttp client posting the same body, both
in this process, 8 at a time, to a bare server in another process. Not part of the
suite; it says how much of the delivery figure is the channel's own.

    .venv/bin/python -m benchmarks.channel [--requests 4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp

from benchmarks.harness import REPO, Paired, event
from mailhooks.channels.base import Message, WebhookRef
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.web import WebChannel, WebSender
from mailhooks.secrets import Resolved
from mailhooks.settings import Settings
from tests.utils import LOOPBACK, wait_until

CONCURRENCY = 8
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def cpu_per_request(send: Callable[[], Awaitable[None]], requests: int) -> tuple[float, float]:
    """(CPU µs per request, requests/s) with CONCURRENCY requests in flight."""
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await send()

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return (time.process_time() - cpu) / requests * 1e6, requests / (time.perf_counter() - started)


async def compare(url: str, requests: int, rounds: int) -> Paired:
    body = json.dumps(event(1, event_id="0" * 32)).encode()
    settings = Settings.model_validate({"allow_http": True, "egress": {"allow": LOOPBACK}})
    context = ChannelContext(settings)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as bare:
        channel = WebChannel.model_validate({"type": "web", "url": url, "secret": "${env:S}"})
        sender = WebSender(WebhookRef("bench", "bench"), channel, Resolved({"${env:S}": SECRET}),
                           context)
        message = Message("0" * 32, [], body)
        headers = {"Content-Type": "application/json", "User-Agent": "bench/1",
                   "webhook-id": "x", "webhook-timestamp": "1705314600"}

        async def send_bare() -> None:
            async with bare.post(url, data=body, headers=headers) as response:
                await response.read()

        async def send_channel() -> None:
            outcome = await sender.send(message)
            if not outcome.ok:
                raise RuntimeError(f"the channel failed: {outcome.error}")

        await cpu_per_request(send_bare, 200)  # connect and warm up
        await cpu_per_request(send_channel, 200)
        channel_cpu, bare_cpu = [], []
        for _ in range(rounds):
            bare_cpu.append((await cpu_per_request(send_bare, requests))[0])
            channel_cpu.append((await cpu_per_request(send_channel, requests))[0])
    await context.close()
    # CPU per request: lower is better, so the ratio that reads like the others is
    # bare / channel.
    return Paired([1 / x for x in channel_cpu], [1 / x for x in bare_cpu])


async def main(requests: int, rounds: int) -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.bare", f"127.0.0.1:{port}", cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        async def listening() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.close()
            return True

        await wait_until(listening, 20, "the bare server")
        paired = await compare(f"http://127.0.0.1:{port}/events", requests, rounds)
    finally:
        server.terminate()
        await server.wait()
    print(f"bare client {statistics.median(1 / x for x in paired.baseline):.0f} µs CPU per request, "
          f"web channel {statistics.median(1 / x for x in paired.daemon):.0f} µs: "
          f"the channel at {paired.ratio:.2f}× the bare client's rate per CPU second")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.channel", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    try:
        import uvloop

        runner: Callable[..., int] = uvloop.run
    except ImportError:
        runner = asyncio.run
    sys.exit(runner(main(options.requests, options.rounds)))
