"""The README's quick start as a newcomer runs it, on a copy of the repository's files:
`./scripts/serve`, then the README's `mailhooks send` "in another terminal", and the
delivery arrives in the listener, its signature verified. Ctrl-C stops all it started.

By default the copy's `scripts/serve` runs the copy's code with this Python
(MAILHOOKS_PYTHON), whose environment has the dependencies: installing them takes minutes
and the network. MAILHOOKS_TEST_FRESH_INSTALL=1 runs the script unchanged instead, making
its own .venv with pip as a fresh clone does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.utils import REPO, wait_until

DEMO_PORT = 8426
FRESH = os.environ.get("MAILHOOKS_TEST_FRESH_INSTALL") == "1"
# What systemd or a parent's run might have set, which a newcomer's shell has not.
NOT_A_NEWCOMERS = ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY", "RUNTIME_DIRECTORY", "NOTIFY_SOCKET",
                   "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "PYTHONPATH")


def copy_of_the_repository(into: Path) -> Path:
    """The files a clone would have once the work in progress is committed: the tracked
    ones and the new ones git does not ignore (so no .venv, no .mailhooks)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source, target = REPO / name, into / name
        if not source.is_file():
            continue  # deleted in the working tree
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    return into


def readme_event() -> bytes:
    """The event the README's quick start sends."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^\s*echo '(\{.*\})' \| \.venv/bin/mailhooks send -$", readme, re.MULTILINE)
    assert found is not None, "the README's quick start sends no event"
    return found[1].encode()


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Terminal:
    """`./scripts/serve` in a session of its own, as in a terminal: its output as lines,
    Ctrl-C sent to its whole process group."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(line.decode().rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)

    def group_is_gone(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return True
        return False

    async def ctrl_c(self) -> int:
        os.killpg(self.process.pid, signal.SIGINT)
        code = await asyncio.wait_for(self.process.wait(), 30)
        await self.reader
        return code


@contextlib.asynccontextmanager
async def serving(clone: Path, env: dict[str, str]) -> AsyncIterator[Terminal]:
    process = await asyncio.create_subprocess_exec(
        "./scripts/serve", cwd=clone, env=env, start_new_session=True,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    terminal = Terminal(process)
    try:
        yield terminal
    finally:
        if not terminal.group_is_gone():  # a failed test: leave nothing running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


@pytest.mark.parametrize("install", [
    "reused",
    pytest.param("fresh", marks=[pytest.mark.slow, pytest.mark.skipif(
        not FRESH, reason="installs from the network: set MAILHOOKS_TEST_FRESH_INSTALL=1")]),
])
async def test_the_quick_start_shows_a_delivery_arrive(install: str, short_tmp: Path) -> None:
    if not port_is_free(DEMO_PORT):
        pytest.skip(f"port {DEMO_PORT} is in use (is a scripts/serve running?)")
    clone = copy_of_the_repository(short_tmp / "mailhooks")
    env = {name: value for name, value in os.environ.items() if name not in NOT_A_NEWCOMERS}
    if install == "reused":
        env["MAILHOOKS_PYTHON"] = sys.executable
        mailhooks = [sys.executable, "-m", "mailhooks"]
        another_terminal = {**env, "PYTHONPATH": str(clone / "daemon")}
    else:
        env.pop("MAILHOOKS_PYTHON", None)
        mailhooks = [str(clone / ".venv" / "bin" / "mailhooks")]
        another_terminal = env

    async with serving(clone, env) as terminal:
        def listening() -> bool:
            if terminal.process.returncode is not None:
                raise AssertionError(f"scripts/serve exited {terminal.process.returncode}:\n"
                                     + terminal.text())
            return f"mailhooks listen: listening on http://127.0.0.1:{DEMO_PORT}/" in terminal.lines

        await wait_until(listening, 900 if install == "fresh" else 60, "the listener")
        assert "  signatures: checked with ${credential:demo-signing-secret}" in terminal.lines

        async def run(*args: str, stdin: bytes | None = None) -> str:
            process = await asyncio.create_subprocess_exec(
                *mailhooks, *args, cwd=clone, env=another_terminal, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await asyncio.wait_for(process.communicate(stdin), 60)
            assert process.returncode == 0, out.decode()
            return out.decode()

        # Every bundled example and the demo webhook loaded, and the socket where the
        # commands look for it by default.
        examples = len(list((clone / "webhooks.d").rglob("*.y*ml")))
        status = await run("status")
        assert f"config:   {examples + 1} of 100 webhooks loaded, ok" in status, status
        assert await run("send", "-", stdin=readme_event()) == "accepted 1 event(s)\n"

        def verified() -> list[str]:
            return [line for line in terminal.lines
                    if " POST /mailhooks | id " in line and line.endswith("| signature verified")]

        await wait_until(lambda: len(verified()) == 1, 30, "the delivery, verified")
        await wait_until(lambda: "  answered 200" in terminal.lines, 5, "the whole delivery")
        assert '    "message_id": "m1",' in terminal.lines
        assert "NOT VERIFIED" not in terminal.text()

        assert await terminal.ctrl_c() == 0, terminal.text()
        assert terminal.lines[-1] == "mailhooks listen: stopped after 1 request(s)"
        await wait_until(terminal.group_is_gone, 5, "every process scripts/serve started to end")
        log = (clone / ".mailhooks" / "daemon.log").read_text()
        assert "stopped" in log.splitlines()[-1], log[-2000:]
