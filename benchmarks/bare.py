"""The baseline server: bare aiohttp on a UNIX socket, a handler that reads the body and
answers 202, on uvloop when it is installed (as the daemon is).

    python -m benchmarks.bare SOCKET
    python -m benchmarks.bare 127.0.0.1:PORT      # on TCP, for the channel benchmark
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web


async def accept(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"accepted": 1, "duplicates": 0}, status=202)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def serve(where: str) -> None:
    app = web.Application(client_max_size=10 * 1024 * 1024)
    app.router.add_post("/events", accept)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, _, port = where.rpartition(":")
    if host and port.isdigit():
        await web.TCPSite(runner, host, int(port)).start()
    else:
        await web.UnixSite(runner, where).start()
    await asyncio.Event().wait()


def main() -> int:
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run  # type: ignore[assignment]
    try:
        run(serve(sys.argv[1]))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
