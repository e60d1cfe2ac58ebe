"""The spool on disk: a full spool refuses whole batches with 503 and takes intake back
once drained and pruned; a damaged spool stops the daemon with one clear line and is left
exactly as it was."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from mailhooks.spool import Spool, SpoolError
from tests.reliability.conftest import closed_port, deliveries, log_lines
from tests.utils import DaemonProcess, Receiver, event, held_until, unix_exchange, wait_until

MAX_BYTES = 262144
BATCH = 20
PAD = "x" * 400  # a realistic broadcast name, so a batch is ~10 KB of payload


def _batch(start: int, prefix: str = "e") -> list[dict[str, object]]:
    return [
        event(number, event_id=f"{prefix}{number}", broadcast_name=PAD)
        for number in range(start, start + BATCH)
    ]


async def test_a_full_spool_refuses_whole_batches_and_resumes_once_drained(
    daemon: DaemonProcess,
) -> None:
    # The receiver is down in the way that keeps the breaker out of it (see
    # test_endpoint_faults for the breaker): it takes connections and never answers,
    # until it comes back up.
    up = asyncio.Event()
    receiver = await Receiver(handler=held_until(up)).start()
    daemon.config["spool"] = {"max_bytes": MAX_BYTES, "retention": 0}
    # max_pending as large as it goes: this webhook may fill the spool (SPEC §5 lets a
    # webhook have its own cap), so the spool itself fills with what it must keep.
    daemon.add_webhook("crm", receiver.url, channel={"timeout": 120, "max_pending": 100_000_000})
    await daemon.start()
    accepted: list[str] = []
    answer: object = None
    for round_number in range(200):
        status, answer = await daemon.post(_batch(round_number * BATCH))
        if status == 503:
            break
        assert status == 202, answer
        accepted += [f"e{n}" for n in range(round_number * BATCH, (round_number + 1) * BATCH)]
    else:
        raise AssertionError("the spool never filled up")
    print(f"\ndisk: {len(accepted)} events accepted before the spool was full")
    assert len(accepted) >= 2 * BATCH, "the first batches should fit"
    assert isinstance(answer, dict) and "full" in answer["error"]

    # A refused batch leaves nothing behind, and says when to come back.
    refused = _batch(0, prefix="refused-")
    status, _ = await daemon.post(refused)
    assert status == 503
    status, headers = await _post_headers(daemon, refused)
    assert status == 503 and "Retry-After" in headers
    listed = {row["event_id"] for row in await deliveries(daemon)}
    assert len(listed) == len(accepted) and not listed & {e["event_id"] for e in refused}

    # The receiver comes up: everything drains, is pruned, and intake resumes.
    up.set()
    try:
        async def drained() -> bool:
            return not await deliveries(daemon, state="pending")

        await wait_until(drained, 30, "the spool to drain")
        assert {e["event_id"] for e in receiver.events()} >= set(accepted)
        drained_at = time.monotonic()

        answers: list[object] = []

        async def intake_resumed() -> bool:
            status, answer = await daemon.post(refused)
            answers.append(answer)
            return status == 202

        # Pruning runs every max(60 s, retention) (hourly at most): give it one round.
        await wait_until(intake_resumed, 80, "intake to resume after the drain")
        print(f"disk: intake resumed {time.monotonic() - drained_at:.1f}s after the drain; "
              f"pruned: {log_lines(daemon, 'spool_pruned')}")
        # None of the 503'd posts of this batch had spooled anything: now it is all new.
        assert answers[-1] == {"accepted": BATCH, "duplicates": 0}, answers[-1]
        await wait_until(lambda: {e["event_id"] for e in refused}
                         <= {e["event_id"] for e in receiver.events()}, 20, "the late batch")
    finally:
        await receiver.stop()


async def _post_headers(daemon: DaemonProcess, events: object) -> tuple[int, dict[str, str]]:
    status, headers, _ = await unix_exchange(daemon.socket, "POST", "/events",
                                             json.dumps(events).encode())
    return status, headers


# -- damaged spools ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_spool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spool written by a real daemon (many pages), closed cleanly."""
    root = Path(os.path.realpath(tmp_path_factory.mktemp("spool")))
    short = Path(__import__("tempfile").mkdtemp(prefix="mh", dir="/tmp"))

    async def write() -> None:
        daemon = DaemonProcess(short)
        daemon.add_webhook("crm", f"http://127.0.0.1:{closed_port()}/hook",
                           channel={"retry_schedule": [600.0]})
        await daemon.start()
        for start in range(0, 200, BATCH):
            status, _ = await daemon.post(_batch(start))
            assert status == 202
        assert await daemon.stop() == 0

    try:
        asyncio.run(write())
        shutil.copy(short / "state" / "spool.db", root / "spool.db")
    finally:
        shutil.rmtree(short, ignore_errors=True)
    return root / "spool.db"


def _truncated(path: Path) -> None:
    size = path.stat().st_size
    assert size > 8 * 4096, size
    with path.open("r+b") as handle:
        handle.truncate(size // 2 - 1000)  # mid-page


def _random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(65536))


def _newer_version(path: Path) -> None:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 99")
    connection.close()


@pytest.mark.parametrize(("damage", "expected"), [
    (_truncated, "malformed"),
    (_random_bytes, "cannot be opened"),
    (_newer_version, "newer mailhooks"),
], ids=["truncated", "not-a-database", "newer-version"])
async def test_a_damaged_spool_stops_the_daemon_and_is_left_alone(
    daemon: DaemonProcess, real_spool: Path, damage: object, expected: str
) -> None:
    spool = daemon.root / "state" / "spool.db"
    spool.parent.mkdir()
    shutil.copy(real_spool, spool)
    assert callable(damage)
    damage(spool)
    before = hashlib.sha256(spool.read_bytes()).hexdigest()
    await daemon.start(wait=False)
    assert daemon.process is not None
    code = await asyncio.wait_for(daemon.process.wait(), 20)
    output = daemon.logs_text()
    assert code != 0, output
    assert "Traceback" not in output, output
    naming = [line for line in output.splitlines() if str(spool) in line]
    assert naming, output
    assert any(expected in line for line in naming), output
    assert hashlib.sha256(spool.read_bytes()).hexdigest() == before, "the spool was modified"
    assert not daemon.socket.exists() or not await daemon.healthy()
    print(f"\n{damage.__name__}: exit {code}; {len(naming)} line(s) name the file:\n"  # type: ignore[attr-defined]
          + "\n".join(naming))


async def test_retained_delivered_rows_never_keep_intake_refused(daemon: DaemonProcess) -> None:
    """With the default retention (7 days of delivered rows), a spool that filled while
    its receiver was down must take events again once everything is delivered: history
    kept for operators may not refuse new events (they would be lost at the sender)."""
    up = asyncio.Event()
    receiver = await Receiver(handler=held_until(up)).start()
    try:
        daemon.config["spool"] = {"max_bytes": MAX_BYTES}  # retention: the default
        daemon.add_webhook("crm", receiver.url,
                           channel={"timeout": 120, "max_pending": 100_000_000})
        await daemon.start()
        for round_number in range(200):
            status, _ = await daemon.post(_batch(round_number * BATCH))
            if status == 503:
                break
            assert status == 202
        else:
            raise AssertionError("the spool never filled up")
        up.set()

        async def drained() -> bool:
            return not await deliveries(daemon, state="pending")

        await wait_until(drained, 30, "the spool to drain")

        async def intake_resumed() -> bool:
            status, _ = await daemon.post(_batch(0, prefix="late-"))
            return status == 202

        await wait_until(intake_resumed, 15, "intake to resume once nothing is pending")
    finally:
        up.set()
        await receiver.stop()


async def test_an_sqlite_too_old_for_the_spool_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    with pytest.raises(SpoolError, match=r"needs SQLite 3\.33\.0 or newer; this Python uses 3\.31\.1"):
        await Spool.open(tmp_path / "spool.db", max_bytes=1 << 20, retention=60)
    assert not (tmp_path / "spool.db").exists()
