"""Shared parts of the benchmarks: the real daemon as a subprocess, a fast receiver, a
black hole, the load generator in its own process, and the result rows.

Every benchmark compares the daemon with a baseline measured in the same run on the same
machine (a bare aiohttp server or client, bare SQLite, …): the ratio is what counts, since
the absolute figures move with the machine and with whatever else runs on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.utils import DaemonProcess, Receiver, unix_request, wait_until

REPO = Path(__file__).resolve().parents[1]


# -- results --------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: the daemon's figure beside its baseline and the goal."""

    benchmark: str
    figure: str
    baseline: str
    ratio: str
    goal: str
    met: bool | None
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "figure": self.figure, "limit": self.baseline,
                "ratio": self.ratio, "goal": self.goal, "met": self.met, "details": self.details}


@dataclass(frozen=True)
class Scale:
    """How big and how long: the full run, or `--quick`."""

    quick: bool = False

    def pick(self, full: Any, quick: Any) -> Any:
        return quick if self.quick else full


@dataclass(frozen=True)
class Paired:
    """Rounds of the daemon and its baseline, run alternately: a machine that slows down
    for a few seconds then slows one round of each, not all of one side. The figures are
    the medians; the ratio is the median of the rounds' own ratios."""

    daemon: list[float]
    baseline: list[float]

    @property
    def figure(self) -> float:
        return statistics.median(self.daemon)

    @property
    def limit(self) -> float:
        return statistics.median(self.baseline)

    @property
    def ratio(self) -> float:
        return statistics.median(d / b for d, b in zip(self.daemon, self.baseline, strict=True))

    def as_json(self) -> dict[str, Any]:
        return {"daemon_rounds": [round(x, 1) for x in self.daemon],
                "baseline_rounds": [round(x, 1) for x in self.baseline],
                "round_ratios": [round(d / b, 3) for d, b in zip(self.daemon, self.baseline,
                                                                  strict=True)]}


def ratio_text(value: float) -> str:
    return f"{value:.2f}×"


def rate_text(per_second: float, unit: str = "events/s") -> str:
    return f"{per_second:,.0f} {unit}"


def machine() -> dict[str, Any]:
    memory = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                memory[key] = value.strip()
    installed = {}
    for module in ("uvloop",):
        try:
            __import__(module)
            installed[module] = True
        except ImportError:
            installed[module] = False
    return {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "memory": memory,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "loadavg": os.getloadavg(),
        **installed,
    }


# -- processes --------------------------------------------------------------------------


def vm_rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU seconds a process (or one of its threads) has used so far."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@contextlib.contextmanager
def scratch(prefix: str = "mhb-") -> Any:
    """A short temp directory (UNIX socket paths are limited to 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Daemon(DaemonProcess):
    """The tests' daemon subprocess, with logging at warning so it is not the bottleneck
    and a signing secret in its environment."""

    def __init__(self, root: Path, config: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None) -> None:
        super().__init__(
            root,
            {"log": {"format": "json", "level": "warning"}, "shutdown_grace": 1, **(config or {})},
            {"BENCH_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", **(env or {})},
        )
        self.state = root / "state"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def write_webhook(self, webhook_id: str, document: dict[str, Any]) -> Path:
        """Write `webhook_id`.yaml atomically, named after its id (names are unique)."""
        return self.write_document(webhook_id, {**document, "name": webhook_id[:100]})

    async def pending(self) -> int:
        _, status = await self.request("GET", "/status")
        return int(status["queue"]["pending"])

    def rss_kib(self) -> int:
        return vm_rss_kib(self.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def main_thread_cpu(self) -> float:
        """CPU seconds of the thread that runs the event loop."""
        return cpu_seconds(self.pid, thread=self.pid)

    def logs(self) -> str:  # type: ignore[override]
        return self.logs_text()


@contextlib.asynccontextmanager
async def running_daemon(root: Path, config: dict[str, Any] | None = None,
                         webhooks: dict[str, dict[str, Any]] | None = None,
                         timeout: float = 120) -> AsyncIterator[Daemon]:
    daemon = Daemon(root, config)
    for webhook_id, document in (webhooks or {}).items():
        daemon.write_webhook(webhook_id, document)
    try:
        await daemon.start(timeout)
        yield daemon
    finally:
        await daemon.stop()


def web_webhook(url: str, *, events: Any = "all", filters: dict[str, list[str]] | None = None,
                secret: bool = True, timeout: float = 60,
                retry_schedule: list[float] | None = None,
                batch: dict[str, float] | None = None) -> dict[str, Any]:
    """A webhook document; signed with `${env:BENCH_SECRET}` unless `secret=False`."""
    channel: dict[str, Any] = {"type": "web", "url": url, "timeout": timeout}
    if secret:
        channel["secret"] = "${env:BENCH_SECRET}"
    if retry_schedule is not None:
        channel["retry_schedule"] = retry_schedule
    if batch is not None:
        channel["batch"] = batch
    document: dict[str, Any] = {"name": "bench", "events": events, "channel": channel}
    if filters:
        document["filters"] = filters
    return document


# -- the other end --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def receiver(**kwargs: Any) -> AsyncIterator[Receiver]:
    """The tests' Receiver, counting without keeping each request."""
    endpoint = await Receiver(keep=False, **kwargs).start(backlog=1024)
    try:
        yield endpoint
    finally:
        await endpoint.stop()


@contextlib.contextmanager
def black_hole() -> Any:
    """A TCP port that completes connections (the kernel's backlog) and never answers:
    deliveries to it stay in flight until their timeout, the rest stay pending."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/void"
    finally:
        sock.close()


# -- the load generator, in its own process ---------------------------------------------


async def loadgen(*args: str, timeout: float = 300) -> dict[str, Any]:
    """`python -m benchmarks.loadgen ARGS` in a subprocess; its JSON report."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.loadgen", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    if process.returncode != 0:
        raise RuntimeError(f"loadgen {' '.join(args)} failed:\n{err.decode()[-3000:]}")
    report: dict[str, Any] = json.loads(out)
    return report


@contextlib.asynccontextmanager
async def bare_server(root: Path) -> AsyncIterator[tuple[Path, int]]:
    """The baseline for intake: a bare aiohttp server on a UNIX socket whose handler reads
    the body and answers 202, in its own process (uvloop when the daemon would use it)."""
    path = root / "bare.sock"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.bare", str(path), cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )

    async def ready() -> bool:
        if process.returncode is not None:
            raise RuntimeError("the bare server exited")
        try:
            status, _ = await unix_request(path, "GET", "/healthz", timeout=1)
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False
        return status == 200

    try:
        await wait_until(ready, 20, "the bare server")
        yield path, process.pid
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()


def event(number: int, **fields: Any) -> dict[str, Any]:
    """A realistic event, about 300 bytes as JSON."""
    return {
        "event": "delivered", "email": f"recipient{number}@example.com",
        "message_id": f"<{number}.1705314600@mail.example.com>", "campaign_id": 123,
        "broadcast_name": "January Newsletter", "sending_domain": "mail.example.com",
        "sending_node": "smtp1", "timestamp": "2024-01-15T10:30:00Z", **fields,
    }


async def prefill(socket_path: Path, count: int, *, nodes: int = 0, per_post: int = 500,
                  concurrency: int = 4, prefix: str = "") -> float:
    """Spool `count` events (NDJSON posts of `per_post`); event n has sending_node
    node-(n mod `nodes`) when `nodes` is set. Returns the seconds it took."""
    started = time.monotonic()
    queue = list(range(0, count, per_post))
    connector = aiohttp.UnixConnector(path=str(socket_path), limit=concurrency)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=300)) as session:

        async def worker() -> None:
            while queue:
                first = queue.pop()
                lines = []
                for number in range(first, min(first + per_post, count)):
                    fields: dict[str, Any] = {"event_id": f"{prefix}{number}"} if prefix else {}
                    if nodes:
                        fields["sending_node"] = f"node-{number % nodes}"
                    lines.append(json.dumps(event(number, **fields)))
                body = ("\n".join(lines) + "\n").encode()
                async with session.post("http://mailhooks/events", data=body,
                                        headers={"Content-Type": "application/x-ndjson"}) as answer:
                    text = await answer.text()
                    if answer.status != 202:
                        raise RuntimeError(f"prefill: {answer.status} {text[:300]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.monotonic() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]
