"""Real parts for tests: an aiohttp receiver on 127.0.0.1 and the daemon as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy

from mailhooks.app import App
from mailhooks.settings import Settings

REPO = Path(__file__).resolve().parent.parent
# MAILHOOKS_BASELINE=/path/to/another/checkout/daemon runs the daemon and CLI
# subprocesses of the tests from that code: a new test shown to fail on the code before.
BASELINE = os.environ.get("MAILHOOKS_BASELINE")
_SUBPROCESS_ENV = {"PYTHONPATH": BASELINE} if BASELINE else {}
# egress.allow for receivers on this host: loopback is denied otherwise (SPEC §5).
LOOPBACK = ["127.0.0.0/8", "::1/128"]


class WaitTimeout(AssertionError, TimeoutError):
    """A condition not met in time: a failed assertion in a test, a timeout elsewhere."""


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 15.0, what: str = "",
    interval: float = 0.02,
) -> None:
    """Poll `condition` until true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what or condition}")
        await asyncio.sleep(interval)


async def serve_app(
    app: web.Application, host: str = "127.0.0.1", port: int = 0, *, backlog: int = 128,
    shutdown_timeout: float = 0.5,
) -> tuple[web.AppRunner, int]:
    """Serve `app` on `host`:`port` (0: a free port); the runner, and the port it got."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=backlog)
    await site.start()
    server = site._server
    assert server is not None
    bound: int = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return runner, bound


@dataclass
class Received:
    headers: CIMultiDictProxy[str]  # case-insensitive, as any HTTP server reads them
    body: bytes
    at: float
    path: str = "/hook"
    method: str = "POST"
    query: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


Handler = Callable[["Receiver", web.Request], Awaitable[web.StreamResponse]]


async def _ok(_receiver: Receiver, _request: web.Request) -> web.StreamResponse:
    return web.Response(status=200, text="ok")


def held_until(released: asyncio.Event) -> Handler:
    """A handler that keeps every request waiting until `released` is set, then answers
    200: an endpoint that is down without refusing connections, or merely slow."""

    async def held(_receiver: Receiver, _request: web.Request) -> web.StreamResponse:
        await released.wait()
        return web.Response(status=200)

    return held


@dataclass
class Receiver:
    """An endpoint on 127.0.0.1 that records every request; `handler` decides the answer.

    Tests keep each request (`requests`); benchmarks, which send hundreds of thousands,
    set `keep=False` and read the counts, and when asked each `webhook-id` per path
    (`track_ids`: to find lost or doubled events) and when it first arrived (`timing`).
    While `gate` is clear, requests wait before they are answered."""

    handler: Handler = _ok
    requests: list[Received] = field(default_factory=list)
    keep: bool = True
    track_ids: bool = False
    timing: bool = False
    runner: web.AppRunner | None = None
    port: int = 0
    host: str = "127.0.0.1"
    # Set when the receiver stops, so that handlers waiting on it return.
    release: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    count: int = 0
    by_path: dict[str, int] = field(default_factory=dict)
    ids: dict[str, set[str]] = field(default_factory=dict)
    arrivals: dict[str, float] = field(default_factory=dict)
    first_at: dict[str, float] = field(default_factory=dict)
    sent_latency: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gate.set()

    @property
    def origin(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.origin}/hook"

    def url_for(self, path: str) -> str:
        return f"{self.origin}/{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        now = time.monotonic()
        if not self.gate.is_set():
            await self.gate.wait()
        path = request.path
        self.count += 1
        self.by_path[path] = self.by_path.get(path, 0) + 1
        self.first_at.setdefault(path, now)
        if self.track_ids or self.timing:
            message_id = request.headers.get("webhook-id", "")
            if self.track_ids:
                self.ids.setdefault(path, set()).add(message_id)
            if self.timing:
                self.arrivals.setdefault(message_id, now)
                sent = request.headers.get("x-sent-at")
                if sent is not None:
                    self.sent_latency.append(now - float(sent))
        if self.keep:
            self.requests.append(Received(request.headers, body, time.time(), path,
                                          request.method, request.query_string))
        return await self.handler(self, request)

    async def start(self, backlog: int = 128) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner, self.port = await serve_app(app, self.host, self.port, backlog=backlog,
                                                 shutdown_timeout=0.2)
        return self

    async def stop(self) -> None:
        self.release.set()
        self.gate.set()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def events(self) -> list[dict[str, Any]]:
        """Every event received, batches flattened."""
        found: list[dict[str, Any]] = []
        for request in self.requests:
            data = request.json()
            found.extend(data if isinstance(data, list) else [data])
        return found


def event(number: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "event": "delivered", "email": f"r{number}@example.com",
        "message_id": f"m{number}", "event_id": f"e{number}", **fields,
    }


async def unix_exchange(socket_path: Path, method: str, path: str, data: bytes | None = None, *,
                        content_type: str = "application/json",
                        timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """One request to a daemon's UNIX socket: (status, headers, the answer's bytes)."""
    connector = aiohttp.UnixConnector(path=str(socket_path))
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as session, session.request(
        method, f"http://mailhooks{path}", data=data, headers={"Content-Type": content_type}
    ) as response:
        return response.status, dict(response.headers), await response.read()


async def unix_request(socket_path: Path, method: str, path: str, body: Any = None, *,
                       data: bytes | None = None, content_type: str = "application/json",
                       timeout: float = 10) -> tuple[int, Any]:
    """One request to a daemon's UNIX socket: (status, the answer as JSON or text)."""
    payload = data if data is not None else (None if body is None else json.dumps(body).encode())
    status, _headers, answer = await unix_exchange(
        socket_path, method, path, payload, content_type=content_type, timeout=timeout
    )
    text = answer.decode("utf-8", errors="replace")
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


class DaemonProcess:
    """`mailhooks serve` in a subprocess with its own config, socket and state directory."""

    def __init__(self, root: Path, config: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.root = root
        self.webhooks = root / "webhooks"
        self.webhooks.mkdir(parents=True, exist_ok=True)
        self.socket = root / "s.sock"
        self.log_path = root / "daemon.log"
        self.config_path = root / "mailhooks.yaml"
        self.config = {
            "webhooks_dir": str(self.webhooks), "socket": str(self.socket),
            "state_dir": str(root / "state"), "allow_http": True, "egress": {"allow": LOOPBACK},
            "log": {"format": "json", "level": "debug"}, "shutdown_grace": 2,
            **(config or {}),
        }
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **_SUBPROCESS_ENV, **(env or {})}
        # A command the daemon runs under (`unshare -m sh -c ...`), when a test needs one.
        self.wrap: list[str] = []
        self.process: asyncio.subprocess.Process | None = None

    def write_config(self) -> None:
        self.config_path.write_text(json.dumps(self.config))

    def add_webhook(self, webhook_id: str, url: str, **fields: Any) -> Path:
        """Write `webhook_id`.yaml atomically; `fields` override the document's keys."""
        channel = {"type": "web", "url": url, "retry_schedule": [0.05, 0.05, 0.05]}
        channel.update(fields.pop("channel", {}))
        return self.write_document(
            webhook_id, {"name": webhook_id, "events": "all", "channel": channel, **fields}
        )

    def write_document(self, webhook_id: str, document: dict[str, Any]) -> Path:
        """Write `webhook_id`.yaml (JSON is YAML) atomically."""
        path = self.webhooks / f"{webhook_id}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(document))
        temporary.rename(path)  # atomic: the watcher never sees half a file
        return path

    async def start(self, timeout: float = 20, *, wait: bool = True,
                    config_ok: bool = True) -> DaemonProcess:
        self.write_config()
        log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            *self.wrap, sys.executable, "-m", "mailhooks", "serve", "--config", str(self.config_path),
            stdout=log, stderr=log, env=self.env, cwd=self.root,
        )
        log.close()
        if wait:
            await wait_until(self.healthy, timeout, "the daemon to answer")
            if config_ok:
                _, report = await self.request("GET", "/webhooks")
                assert report["config_ok"], report["errors"]
        return self

    async def healthy(self) -> bool:
        if self.process is not None and self.process.returncode is not None:
            raise AssertionError(f"daemon exited {self.process.returncode}:\n{self.logs_text()}")
        try:
            status, _ = await self.request("GET", "/healthz", timeout=1)
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False
        return status == 200

    async def request(self, method: str, path: str, body: Any = None, *,
                      data: bytes | None = None, content_type: str = "application/json",
                      timeout: float = 10) -> tuple[int, Any]:
        return await unix_request(self.socket, method, path, body, data=data,
                                  content_type=content_type, timeout=timeout)

    async def post(self, events: Any, **kwargs: Any) -> tuple[int, Any]:
        return await self.request("POST", "/events", events, **kwargs)

    async def reload_seen(self, count: int) -> None:
        await wait_until(lambda: self.logs_text().count('"reload') >= count, 10, "a reload")

    def logs(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.logs_text().splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                lines.append({"event": "unparsed", "line": line})
        return lines

    def logs_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    async def send_signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def stop(self, signum: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process is None:
            return 0
        if self.process.returncode is None:
            self.process.send_signal(signum)
        code = await asyncio.wait_for(self.process.wait(), timeout)
        self.process = None
        return code

    async def kill(self) -> None:
        await self.stop(signal.SIGKILL)


@contextlib.asynccontextmanager
async def running_app(root: Path, config: dict[str, Any] | None = None) -> AsyncIterator[App]:
    """The daemon in this test's own event loop (not a subprocess), on a socket in `root`:
    for tests that look at its parts (`app.running`). Stopped, and awaited, on exit."""
    settings = Settings.model_validate({
        "webhooks_dir": str(root / "webhooks"), "socket": str(root / "s.sock"),
        "state_dir": str(root / "state"), "allow_http": True, "egress": {"allow": LOOPBACK},
        "shutdown_grace": 1, **(config or {}),
    })
    (root / "webhooks").mkdir(parents=True, exist_ok=True)
    app = App(settings, handle_signals=False)
    task = asyncio.create_task(app.run(), name="app")

    async def answers() -> bool:
        if task.done():
            task.result()  # raises what stopped it
        try:
            status, _ = await unix_request(settings.socket_path(), "GET", "/healthz", timeout=1)
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False
        return status == 200

    try:
        await wait_until(answers, 20, "the in-process daemon to answer")
        yield app
    finally:
        app.stop_event.set()
        await asyncio.wait_for(task, 30)


async def run_cli(*args: str, stdin: bytes | None = None,
                  env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`mailhooks ARGS` as a subprocess, without blocking the loop the receivers run on."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mailhooks", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **_SUBPROCESS_ENV, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
