"""The daemon's lifecycle: serve → startup → main loop → shutdown.

Config flows one way: the CLI builds a Settings; `App` takes only it, builds every part
at startup, and hands the API a `Service`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from mailhooks import grants, log, systemd
from mailhooks.channels.context import ChannelContext
from mailhooks.delivery.dispatcher import Dispatcher
from mailhooks.delivery.shares import SWEEP_EVERY, ShareKeeper
from mailhooks.listeners import StartupError, lock_state_directory, make_private_directory, sites
from mailhooks.live import LiveRef
from mailhooks.metrics import Metrics
from mailhooks.reasons import os_reason
from mailhooks.reload import Reloader
from mailhooks.roles import Authority
from mailhooks.secrets import SecretSources
from mailhooks.server import make_server
from mailhooks.service import Service
from mailhooks.settings import Settings
from mailhooks.spool import Spool, SpoolError

PRUNE_EVERY: Final = 3600.0

_log = log.get("mailhooks.app")

__all__ = ["App", "StartupError", "serve"]


@dataclass
class Running:
    """The parts of a started daemon, each made once at startup."""

    service: Service
    spool: Spool
    channels: ChannelContext
    dispatcher: Dispatcher
    reloader: Reloader
    runner: web.BaseRunner
    lock: int  # the state directory's lock, held until the daemon stops
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


def prune_interval(retention: float) -> float:
    """Seconds between prunes of delivered rows: a delivered row lives at most the
    retention and one interval."""
    return min(PRUNE_EVERY, max(60.0, retention))


class App:
    """The daemon. `handle_signals=False` runs it inside another program's event loop (a
    test's): it then stops when `stop_event` is set."""

    def __init__(self, settings: Settings, *, handle_signals: bool = True) -> None:
        self.settings = settings
        self.handle_signals = handle_signals
        self.stop_event = asyncio.Event()
        self.running: Running | None = None  # for tests that look inside

    async def run(self) -> None:
        """Start, serve until SIGTERM/SIGINT (or `stop_event`), and stop cleanly."""
        running = self.running = await self.startup()
        try:
            await self.main_loop(running)
        finally:
            await self.shutdown(running)

    async def startup(self) -> Running:
        """Every part, in order; a step that fails undoes the ones before it."""
        settings = self.settings
        state_dir = settings.state_path()
        authority = Authority(settings)
        try:
            authority.load_tokens(SecretSources.from_process(settings.secrets.dirs))
        except ValueError as error:
            raise StartupError(str(error)) from None
        async with contextlib.AsyncExitStack() as undo:
            try:
                make_private_directory(state_dir)
                lock = lock_state_directory(state_dir)
                undo.callback(os.close, lock)
                spool = await Spool.open(state_dir / "spool.db", max_bytes=settings.spool.max_bytes,
                                         retention=settings.spool.retention)
            except OSError as error:
                raise StartupError(f"state directory {state_dir}: {os_reason(error)}") from None
            except SpoolError as error:
                raise StartupError(str(error)) from None
            undo.push_async_callback(spool.close)
            metrics = Metrics()
            channels = ChannelContext(settings, {"pushover_remaining": metrics.pushover_remaining.set})
            undo.push_async_callback(channels.close)
            current = LiveRef()
            dispatcher = Dispatcher(spool, settings, metrics, current.webhook)
            reloader = Reloader(settings, channels, metrics, current, dispatcher.swap)
            shares = ShareKeeper(spool, settings, metrics, current, dispatcher.claimed_ids)
            service = Service(settings, metrics, spool, current, reloader, dispatcher, authority, shares)
            await reloader.reload("start")
            await dispatcher.start()
            undo.push_async_callback(dispatcher.stop, 0)
            runner = web.ServerRunner(make_server(service, authority), shutdown_timeout=1.0)
            await runner.setup()
            undo.push_async_callback(runner.cleanup)
            for site in sites(runner, settings):
                await site.start()
            undo.pop_all()  # started: `shutdown` stops the parts, in its own order
        return Running(service, spool, channels, dispatcher, reloader, runner, lock)

    async def main_loop(self, running: Running) -> None:
        service = running.service
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.stop_event.set)
            loop.add_signal_handler(
                signal.SIGHUP,
                lambda: running.tasks.append(asyncio.create_task(service.reload("sighup"))),
            )
        running.tasks += [
            asyncio.create_task(running.reloader.watch(self.stop_event), name="watch"),
            asyncio.create_task(self._prune_loop(running.spool), name="prune"),
            asyncio.create_task(self._share_loop(service), name="shares"),
            asyncio.create_task(self._watchdog_loop(service), name="watchdog"),
        ]
        summary = await service.summary()
        http = self.settings.http
        if not grants.scoped(self.settings):
            _log.warning("secrets_not_scoped", hint="without secrets.grants in the config, any "
                         "webhook file may use any secret reference (SPEC §2)")
        _log.info("started", socket=str(self.settings.socket_path()),
                  http=http.listen if http else None, state_dir=str(self.settings.state_path()),
                  webhooks_dir=str(self.settings.webhooks_dir), summary=summary)
        systemd.ready(summary)
        await self.stop_event.wait()

    async def shutdown(self, running: Running) -> None:
        systemd.stopping()
        _log.info("stopping", grace=self.settings.shutdown_grace)
        # 1. Stop taking events: intake answers 503 from now on.
        running.service.stopping = True
        self.stop_event.set()
        # 2. Stop the watcher and the housekeeping.
        for task in running.tasks:
            task.cancel()
        await asyncio.gather(*running.tasks, return_exceptions=True)
        # 3. Let attempts in flight finish within the grace period; the rest stay spooled.
        cancelled = await running.dispatcher.stop(self.settings.shutdown_grace)
        # 4. Close the listeners and the connections.
        await running.runner.cleanup()
        await running.channels.close()
        # 5. Commit what is queued and close the spool; then let the next daemon in.
        await running.spool.close()
        os.close(running.lock)
        _log.info("stopped", cancelled_attempts=cancelled)

    async def _prune_loop(self, spool: Spool) -> None:
        while True:
            await asyncio.sleep(prune_interval(self.settings.spool.retention))
            try:
                removed = await spool.prune()
                _log.info("spool_pruned", deliveries=removed, spool_bytes=spool.size_bytes())
            except SpoolError as error:
                _log.error("prune_failed", error=str(error))

    async def _share_loop(self, service: Service) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                await service.shares.sweep()
            except SpoolError as error:
                _log.error("share_sweep_failed", error=str(error))

    async def _watchdog_loop(self, service: Service) -> None:
        interval = systemd.watchdog_interval()
        if interval is None:
            return
        while True:
            systemd.watchdog_ping()
            systemd.status(await service.summary())
            await asyncio.sleep(interval)


def serve(settings: Settings) -> int:
    """Run the daemon until it is stopped; 0 on a clean stop."""
    log.configure(settings.log.format, settings.log.level)
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        run(App(settings).run())
    except StartupError as error:
        _log.error("startup_failed", error=str(error))
        raise
    return 0
