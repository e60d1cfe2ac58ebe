"""Reading the journal through `journalctl -o json` as a subprocess, from a cursor.

Why journalctl and not the `systemd` (python-systemd) or `cysystemd` bindings: they are C
extensions that build against libsystemd (a compiler and its headers on the host, or a
wheel for this exact platform), and do not come with a plain `pip install` into a venv;
journalctl is on every systemd host, its JSON export is a documented, stable format, and
the cursor it prints (`__CURSOR`) is the journal's own, taken back by `--after-cursor`.
A line of JSON per entry costs more than the C API, and is still far faster than
Postfix logs.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

JOURNALCTL: Final = "journalctl"
# The fields a Postfix line needs; __CURSOR and __REALTIME_TIMESTAMP always come.
FIELDS: Final = "MESSAGE,SYSLOG_IDENTIFIER,SYSLOG_PID,_PID,_HOSTNAME"
MAX_ENTRY_BYTES: Final = 1 << 20
RESTART_SECONDS: Final = 2.0


class JournalError(Exception):
    """journalctl cannot be run, or failed: one line saying why."""


class JournalFollower:
    """Entries of the journal (dicts, as `journalctl -o json` prints them) after
    `cursor`; without one, from the journal's start, or from its end with `at_end` (the
    entry there only gives the cursor: it is handed on without its MESSAGE). With
    `follow`, journalctl follows, and is started again from the last cursor when it ends."""

    def __init__(self, cursor: str | None, *, follow: bool, at_end: bool, unit: str | None,
                 log: Callable[[str], None], command: str = JOURNALCTL) -> None:
        self.cursor = cursor
        self.follow = follow
        self.at_end = at_end
        self.unit = unit
        self.log = log
        self.command = command
        self.malformed = 0

    def argv(self) -> list[str]:
        argv = [self.command, "--output=json", f"--output-fields={FIELDS}", "--no-pager", "--quiet"]
        if self.unit:
            argv.append(f"--unit={self.unit}")
        if self.follow:
            argv.append("--follow")
        if self.cursor is not None:
            argv += [f"--after-cursor={self.cursor}", "--no-tail"]
        elif self.at_end:
            argv.append("--lines=1")
        else:
            argv.append("--no-tail")
        return argv

    async def chunks(self) -> AsyncIterator[list[dict[str, Any]]]:
        """The entries, a list at a time. Following, a journalctl that fails (no unit has
        matched `unit` yet, on a host where Postfix never logged) or ends is started again
        every few seconds, the failure said once; otherwise it is a JournalError."""
        said = None
        while True:
            try:
                async for entries in self._run_once():
                    said = None
                    yield entries
            except JournalError as error:
                if not self.follow:
                    raise
                if str(error) != said:
                    said = str(error)
                    self.log(f"{error}; trying again every {RESTART_SECONDS:.0f} s")
            else:
                if not self.follow:
                    return
                self.log(f"journalctl ended; starting it again in {RESTART_SECONDS:.0f} s")
            await asyncio.sleep(RESTART_SECONDS)

    async def _run_once(self) -> AsyncIterator[list[dict[str, Any]]]:
        if shutil.which(self.command) is None:
            raise JournalError(f"{self.command} is not installed (or not on PATH)")
        skip_first = self.cursor is None and self.at_end
        process = await asyncio.create_subprocess_exec(
            *self.argv(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=MAX_ENTRY_BYTES,
        )
        assert process.stdout is not None and process.stderr is not None
        try:
            while True:
                try:
                    line = await process.stdout.readline()
                except ValueError:  # an entry over the limit: skipped, the stream goes on
                    self.malformed += 1
                    continue
                if not line:
                    break
                entry = self._entry(line)
                if entry is None:
                    continue
                if skip_first:
                    entry, skip_first = {"__CURSOR": entry["__CURSOR"]}, False
                self.cursor = entry["__CURSOR"]
                yield [entry]
            code = await process.wait()
            if code != 0:
                error = (await process.stderr.read()).decode(errors="replace").strip().splitlines()
                raise JournalError(f"journalctl failed ({code}): {error[-1] if error else 'no message'}")
        finally:
            if process.returncode is None:
                process.terminate()
                await process.wait()

    def _entry(self, line: bytes) -> dict[str, Any] | None:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict) or not isinstance(entry.get("__CURSOR"), str):
            self.malformed += 1
            return None
        return entry
