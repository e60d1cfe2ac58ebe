"""Wiring and lifecycle: serve → startup → main loop → shutdown.

Config flows one way: the CLI builds a Settings; `Daemon` takes only it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
import stat
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from mailhooks import log, systemd
from mailhooks.channels.base import ChannelContext, Message
from mailhooks.channels.egress import make_session
from mailhooks.dispatch import PUSHOVER_CONCURRENCY, Dispatcher
from mailhooks.events import EVENT_NAMES, Event, sample
from mailhooks.live import LiveSet, LiveWebhook
from mailhooks.metrics import Metrics
from mailhooks.reasons import os_reason
from mailhooks.reload import Reloader
from mailhooks.server import make_server
from mailhooks.settings import Settings
from mailhooks.spool import NewEvent, Spool, SpoolError
from mailhooks.webhooks.models import WebChannel

SOCKET_MODE: Final = 0o660
PRUNE_EVERY: Final = 3600.0
WEB_CONNECTIONS: Final = 256

_log = log.get("mailhooks.app")


class StartupError(Exception):
    """The daemon cannot start; the message says why, in one line."""


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.stopping = False
        self.stop_event = asyncio.Event()
        self.started_at = time.time()
        self.spool: Spool
        self.context: ChannelContext
        self.reloader: Reloader
        self.dispatcher: Dispatcher

    # -- what the API calls -------------------------------------------------------------

    @property
    def live(self) -> LiveSet:
        return self.reloader.live

    def webhook(self, webhook_id: str) -> LiveWebhook | None:
        return self.reloader.live.webhooks.get(webhook_id)

    async def accept(self, events: Sequence[Event]) -> int:
        """Match and spool events; returns how many were new. Raises SpoolError."""
        match = self.reloader.live.matcher.match
        received_at = datetime.now(UTC)
        batch = []
        targets: set[str] = set()
        by_name: dict[str, int] = {}  # a plain dict: a Counter costs more per request
        for event in events:
            event.fill_in(received_at)
            matched = match(event)
            targets.update(matched)
            by_name[event.event] = by_name.get(event.event, 0) + 1
            batch.append(NewEvent(event.event_id or "", event.event, event.message_id,
                                  event.payload_json(), matched))
        added = await self.spool.add(batch, hand_over=self.dispatcher.wants(targets))
        for name, count in by_name.items():
            self.metrics.received_by(name).inc(count)
        # Per request, so debug (see Dispatcher.settle); the metrics count every event.
        if log.debug_enabled():
            _log.debug("events_accepted", events=len(events), spooled=added.events,
                       duplicates=len(events) - added.events, deliveries=len(added.deliveries))
        self.dispatcher.wake(targets, added.deliveries)
        return added.events

    async def reload(self, reason: str) -> dict[str, Any]:
        systemd.reloading()
        try:
            return await self.reloader.reload(reason)
        finally:
            systemd.ready(await self.summary())

    async def replay(self, delivery_ids: Sequence[int], webhook_id: str | None) -> int:
        webhooks = await self.spool.replay(delivery_ids, webhook_id)
        _log.info("replay", deliveries=len(webhooks), webhook=webhook_id)
        self.dispatcher.wake(set(webhooks))
        return len(webhooks)

    async def test_webhook(self, webhook_id: str, event_name: str | None) -> dict[str, Any] | None:
        live = self.webhook(webhook_id)
        if live is None:
            return None
        selected = live.loaded.webhook.events
        name = event_name or ("delivered" if selected == "all" else selected[0])
        if name not in EVENT_NAMES:
            return {"webhook": webhook_id, "error": f"unknown event {name!r}", "sent": False}
        event = sample(name)  # type: ignore[arg-type]
        message = Message(f"test_{uuid.uuid4().hex}", [event.payload()], event.payload_json())
        outcome = await live.sender.send(message)
        _log.info("webhook_test", webhook=webhook_id, event_name=name, status=outcome.status,
                  outcome=outcome.outcome, duration_ms=round(outcome.duration_ms, 1),
                  error=outcome.error)
        return {
            "webhook": webhook_id, "event": name, "sent": True, "ok": outcome.ok,
            "status": outcome.status, "duration_ms": round(outcome.duration_ms, 1),
            "body": outcome.body_excerpt, "error": outcome.error,
        }

    def webhooks_report(self) -> dict[str, Any]:
        live = self.reloader.live
        errors_by_file: dict[str, list[str]] = {}
        for problem in live.problems:
            errors_by_file.setdefault(problem.file, []).append(str(problem))
        listed = []
        for key, hook in live.webhooks.items():
            model = hook.loaded.webhook
            channel = model.channel
            listed.append({
                "id": key,
                "name": model.name,
                "status": model.status,
                "events": model.events,
                "channel": channel.type,
                "endpoint": channel.url if isinstance(channel, WebChannel) else "Pushover",
                "file": str(hook.loaded.path),
                "state": "stale" if key in live.stale else "running",
                "errors": errors_by_file.get(str(hook.loaded.path), []),
            })
        return {
            "webhooks": listed,
            "count": len(listed),
            "limit": self.settings.limits.max_webhooks,
            "config_ok": live.ok,
            "errors": [str(problem) for problem in live.problems],
            "last_reload": self.reloader.last_report,
        }

    async def status_report(self) -> dict[str, Any]:
        stats = await self.spool.stats()
        live = self.reloader.live
        failing = []
        for key, lane in self.dispatcher.lanes.items():
            if lane.breaker.failures:
                failing.append({
                    "webhook": key, "consecutive_failures": lane.breaker.failures,
                    "circuit_open": lane.breaker.is_open,
                    "pending": stats.pending_by_webhook.get(key, 0),
                })
        return {
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "config": {
                "ok": live.ok, "webhooks": len(live.webhooks),
                "limit": self.settings.limits.max_webhooks,
                "errors": [str(problem) for problem in live.problems],
                "last_reload": self.reloader.last_report,
            },
            "queue": {
                "pending": stats.pending, "failed": stats.failed,
                "oldest_pending_seconds": (
                    None if stats.oldest_pending_at is None
                    else round(time.time() - stats.oldest_pending_at, 1)
                ),
                "in_flight": self.dispatcher.in_flight(),
                "spool_bytes": stats.size_bytes,
            },
            "failing": failing,
        }

    async def summary(self) -> str:
        stats = await self.spool.stats()
        live = self.reloader.live
        state = "ok" if live.ok else f"{len(live.problems)} config error(s)"
        return f"{len(live.webhooks)} webhooks ({state}), {stats.pending} pending, {stats.failed} failed"

    # -- lifecycle ------------------------------------------------------------------------

    async def _on_swap(self, previous: LiveSet, live: LiveSet) -> None:
        for removed in sorted(set(previous.webhooks) - set(live.webhooks)):
            await self.dispatcher.remove(removed)
            dropped = await self.spool.drop_webhook(removed)
            if dropped:
                self.metrics.deliveries_by(removed, "dropped").inc(dropped)
            _log.warning("webhook_removed", webhook=removed, dropped_deliveries=dropped)
        self.dispatcher.wake(
            key for key, hook in live.webhooks.items() if previous.webhooks.get(key) is not hook
        )

    async def run(self) -> None:
        """Start, serve until SIGTERM/SIGINT, and stop cleanly."""
        settings = self.settings
        state_dir = settings.state_path()
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            self.spool = await Spool.open(state_dir / "spool.db", max_bytes=settings.spool.max_bytes,
                                          retention=settings.spool.retention)
        except OSError as error:
            raise StartupError(f"state directory {state_dir}: {os_reason(error)}") from None
        except SpoolError as error:
            raise StartupError(str(error)) from None
        session = make_session(settings, WEB_CONNECTIONS)
        pushover = make_session(settings, PUSHOVER_CONCURRENCY)
        self.context = ChannelContext(settings, session, pushover,
                                      {"pushover_remaining": self.metrics.pushover_remaining.set})
        self.reloader = Reloader(settings, self.context, self.metrics, self._on_swap)
        self.dispatcher = Dispatcher(self.spool, settings, self.metrics, self.webhook)
        runner = web.ServerRunner(make_server(self), shutdown_timeout=1.0)
        tasks: list[asyncio.Task[Any]] = []
        try:
            await self.reloader.reload("start")
            await self.dispatcher.start()
            await runner.setup()
            for site in self._sites(runner):
                await site.start()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.stop_event.set)
            loop.add_signal_handler(
                signal.SIGHUP, lambda: tasks.append(asyncio.create_task(self.reload("sighup")))
            )
            tasks += [
                asyncio.create_task(self.reloader.watch(self.stop_event), name="watch"),
                asyncio.create_task(self._prune_loop(), name="prune"),
                asyncio.create_task(self._watchdog_loop(), name="watchdog"),
            ]
            summary = await self.summary()
            _log.info("started", socket=str(self._socket_path), http=settings.http,
                      state_dir=str(state_dir), webhooks_dir=str(settings.webhooks_dir),
                      summary=summary)
            systemd.ready(summary)
            await self.stop_event.wait()
        finally:
            await self._shutdown(runner, tasks)

    async def _shutdown(self, runner: web.BaseRunner, tasks: list[asyncio.Task[Any]]) -> None:
        systemd.stopping()
        _log.info("stopping", grace=self.settings.shutdown_grace)
        # 1. Stop taking events: intake answers 503 from now on.
        self.stopping = True
        self.stop_event.set()
        # 2. Stop the watcher and the housekeeping.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # 3. Let attempts in flight finish within the grace period; the rest stay spooled.
        cancelled = 0
        if hasattr(self, "dispatcher"):
            cancelled = await self.dispatcher.stop(self.settings.shutdown_grace)
        # 4. Close the listeners and the connections.
        await runner.cleanup()
        if hasattr(self, "context"):
            await self.context.session.close()
            await self.context.pushover_session.close()
        # 5. Commit what is queued and close the spool.
        if hasattr(self, "spool"):
            await self.spool.close()
        _log.info("stopped", cancelled_attempts=cancelled)

    @property
    def _socket_path(self) -> Path:
        return self.settings.socket_path()

    def _sites(self, runner: web.BaseRunner) -> list[web.BaseSite]:
        activated = systemd.listen_sockets()
        inherited = [sock for group in activated.values() for sock in group]
        sites: list[web.BaseSite] = []
        if inherited:
            _log.info("socket_activation", sockets=len(inherited), names=sorted(activated))
            sites += [web.SockSite(runner, sock) for sock in inherited]
        else:
            sites.append(web.SockSite(runner, bind_unix_socket(self._socket_path)))
        if self.settings.http:
            host, _, port = self.settings.http.rpartition(":")
            sites.append(web.TCPSite(runner, host.strip("[]"), int(port)))
        return sites

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(min(PRUNE_EVERY, max(60.0, self.settings.spool.retention)))
            try:
                removed = await self.spool.prune()
                _log.info("spool_pruned", deliveries=removed, spool_bytes=self.spool.size_bytes())
            except SpoolError as error:
                _log.error("prune_failed", error=str(error))

    async def _watchdog_loop(self) -> None:
        interval = systemd.watchdog_interval()
        if interval is None:
            return
        while True:
            systemd.watchdog_ping()
            systemd.status(await self.summary())
            await asyncio.sleep(interval)


def bind_unix_socket(path: Path) -> socket.socket:
    """A listening UNIX socket at `path`, mode 0660; a stale socket file left by a crash is
    replaced, a live one (another daemon answering) never is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        mode = path.lstat().st_mode
        if not stat.S_ISSOCK(mode):
            raise StartupError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            path.unlink()  # stale: nobody listens
        except OSError as error:
            if error.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise StartupError(f"{path}: {os_reason(error)}") from None
        else:
            raise StartupError(f"another process is listening on {path}; is mailhooks running?")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o117)  # never a moment where the socket is wider than 0660
    try:
        sock.bind(str(path))
    except OSError as error:
        sock.close()
        raise StartupError(f"cannot bind {path}: {os_reason(error)}") from None
    finally:
        os.umask(old_umask)
    path.chmod(SOCKET_MODE)
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def serve(settings: Settings) -> int:
    """Run the daemon until it is stopped; 0 on a clean stop."""
    log.configure(settings.log.format, settings.log.level)
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        run(_main(settings))
    except StartupError as error:
        _log.error("startup_failed", error=str(error))
        raise
    return 0


async def _main(settings: Settings) -> None:
    await Daemon(settings).run()
