"""Fixtures shared by the test packages: short temporary dirs, receivers, a real daemon."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.utils import DaemonProcess, Receiver


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary directory with a short path: UNIX socket paths are limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="mh", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = await Receiver().start()
    yield started
    await started.stop()


@pytest.fixture
async def daemon(short_tmp: Path) -> AsyncIterator[DaemonProcess]:
    """A daemon not yet started: add webhooks and config, then `await daemon.start()`."""
    process = DaemonProcess(short_tmp)
    yield process
    await process.stop()


def webhook_yaml(name: str = "Hook", *, events: str = "[delivered]",
                 url: str = "https://hooks.example.com/in", extra: str = "") -> str:
    """A small valid webhook file; `extra` is appended as more top-level lines."""
    return (
        f"name: {name}\n"
        f"events: {events}\n"
        f"{extra}"
        "channel:\n"
        "  type: web\n"
        f"  url: {url}\n"
    )


WriteFile = Callable[..., Path]


@pytest.fixture
def hooks_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "webhooks.d"
    directory.mkdir()
    return directory


@pytest.fixture
def write(hooks_dir: Path) -> WriteFile:
    """write("crm/opens.yaml", text) → the path, parents created; bytes are written as is."""

    def write_file(relative: str, content: str | bytes | None = None) -> Path:
        path = hooks_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            content = webhook_yaml(Path(relative).stem)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write_file
