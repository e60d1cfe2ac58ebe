"""watchfiles, SIGHUP and `POST /-/reload` → load → swap, or keep the old.

Every trigger means "rescan the whole directory": watchfiles reports renames as delete +
add and may drop events when inotify overflows, so the change list is never trusted.
Reloads are serialized; triggers that arrive during a reload coalesce into one more.
The parent of the webhooks directory is watched too, so swapping a symlinked directory
(git-sync, Kubernetes ConfigMaps' `..data`) is seen, and the watcher is rebuilt whenever
the directory's real path changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import watchfiles

from mailhooks import log
from mailhooks.channels.context import ChannelContext
from mailhooks.live import LiveRef, LiveSet, build
from mailhooks.metrics import Metrics
from mailhooks.revision import Revision, revision_of
from mailhooks.secrets import SecretSources
from mailhooks.settings import Settings
from mailhooks.webhooks.load import LoadResult, ParseCache, load_steps

# watchfiles groups the changes of a `git checkout` into one batch: it waits until no
# change came for STEP ms, but never longer than DEBOUNCE ms, keeping reloads under 1 s.
DEBOUNCE_MS: Final = 600
STEP_MS: Final = 100
REBUILD_RESCAN_DELAY: Final = 0.3
# Files read between two yields to the event loop during a reload (a few milliseconds).
FILES_PER_SLICE: Final = 25

_log = log.get("mailhooks.reload")


class Reloader:
    def __init__(
        self,
        settings: Settings,
        context: ChannelContext,
        metrics: Metrics,
        current: LiveRef,
        on_swap: Callable[[LiveSet, LiveSet], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.context = context
        self.metrics = metrics
        self.current = current
        self.on_swap = on_swap
        self._lock = asyncio.Lock()
        self.last_report: dict[str, Any] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._cache = ParseCache()
        # The revision whose every file runs (the last reload without a problem), and the
        # one the last reload read (ahead of it when that reload refused a file).
        self.revision: Revision | None = None
        self.read_revision: Revision | None = None

    @property
    def live(self) -> LiveSet:
        return self.current.now

    @property
    def directory(self) -> Path:
        return self.settings.webhooks_dir

    async def reload(self, reason: str) -> dict[str, Any]:
        """Load everything, then swap in one step; a refused file keeps its last good
        version. Returns a report for the API and the log."""
        async with self._lock:
            started = time.perf_counter()
            result = LoadResult(self.directory)
            for step, _ in enumerate(load_steps(self.directory, self.settings, self._cache, result)):
                if step % FILES_PER_SLICE == 0:
                    await asyncio.sleep(0)  # let intake and deliveries run meanwhile
            loaded = time.perf_counter()
            previous = self.live
            if not self.directory.is_dir():
                # A missing directory is an outage of the config, not a deletion of
                # every webhook: keep everything running.
                live = LiveSet(previous.webhooks, previous.matcher, tuple(result.problems),
                               frozenset(previous.webhooks))
            else:
                live = build(result, previous, self.settings, self.context,
                             SecretSources.from_process(self.settings.secrets.dirs))
            built = time.perf_counter()
            read = await asyncio.to_thread(
                revision_of, self.directory,
                [(key, hook.digest) for key, hook in result.webhooks.items()]
                + [(key, "refused") for key in result.failed_ids],
            )
            self.current.now = live
            await self.on_swap(previous, live)
            self.metrics.reload_ok.set(1 if live.ok else 0)
            if live.ok:
                self.metrics.reload_time.set(time.time())
                self._running_revision(read)
            self.read_revision = read
            self.metrics.webhooks_loaded.set(len(live.webhooks))
            changed = sorted(
                key for key, hook in live.webhooks.items()
                if key not in previous.webhooks
                or previous.webhooks[key].loaded.digest != hook.loaded.digest
            )
            removed = sorted(set(previous.webhooks) - set(live.webhooks))
            errors = [str(problem) for problem in live.problems]
            report: dict[str, Any] = {
                "ok": live.ok,
                "reason": reason,
                "webhooks": len(live.webhooks),
                "changed": changed,
                "removed": removed,
                "errors": errors,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "load_ms": round((loaded - started) * 1000, 1),
                "build_ms": round((built - loaded) * 1000, 1),
                "revision": read.as_json(),
            }
            self.last_report = {**report, "at": time.time()}
            event = "reload" if live.ok else "reload_failed"
            (_log.info if live.ok else _log.error)(
                event, reason=reason, webhooks=len(live.webhooks), changed=changed[:20],
                removed=removed[:20], errors=errors[:20],
                duration_ms=report["duration_ms"], load_ms=report["load_ms"],
                build_ms=report["build_ms"], revision=read.label,
            )
            return report

    def _running_revision(self, revision: Revision) -> None:
        """Every file of `revision` runs now: say so in mailhooks_config_info."""
        if self.revision is not None and self.revision.label != revision.label:
            with contextlib.suppress(KeyError):
                self.metrics.config_info.remove(self.revision.label)
        self.revision = revision
        self.metrics.config_info.labels(revision.label).set(1)

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload on every change under the directory until `stop` is set."""
        while not stop.is_set():
            target = self._real_directory()
            link = self.directory.absolute()
            # Only a symlinked directory needs its parent watched (to see the link swap).
            paths = {target, link.parent} if link.is_symlink() else {target}
            paths = {path for path in paths if path.exists()}
            if not paths:
                await _wait(stop, 1.0)
                continue
            relevant = _relevant_to(link, target)
            try:
                async for _changes in watchfiles.awatch(
                    *paths, stop_event=stop, debounce=DEBOUNCE_MS, step=STEP_MS,
                    recursive=True, ignore_permission_denied=True, watch_filter=relevant,
                ):
                    await self.reload("watch")
                    if self._real_directory() != target:
                        # A symlink swap: watch the new target, and rescan once the new
                        # watcher runs, for changes made while it was being rebuilt.
                        rescan = asyncio.create_task(self._rescan_soon(stop))
                        self._background.add(rescan)
                        rescan.add_done_callback(self._background.discard)
                        break
            except (OSError, RuntimeError) as error:
                _log.warning("watch_failed", error=str(error), retry_in=1.0)
                await _wait(stop, 1.0)

    async def _rescan_soon(self, stop: asyncio.Event) -> None:
        await _wait(stop, REBUILD_RESCAN_DELAY)
        if not stop.is_set():
            await self.reload("watch")

    def _real_directory(self) -> Path:
        try:
            return self.directory.resolve(strict=True)
        except OSError:
            return self.directory.absolute()


def _relevant_to(link: Path, target: Path) -> Callable[[watchfiles.Change, str], bool]:
    """Changes to the directory itself (a link swap) or anything below it."""
    roots = {str(link), str(target)}
    prefixes = tuple(root + "/" for root in roots)

    def relevant(_change: watchfiles.Change, path: str) -> bool:
        return path in roots or path.startswith(prefixes)

    return relevant


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
