"""Fixtures shared by the test packages: short temporary dirs, receivers, a real daemon."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
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
