"""A delivery keeps its identity (SPEC §5): a batch is retried whole under the same
webhook-id; a Retry-After cannot park a delivery for centuries; an outcome that cannot
be written is never a reason to send again; one state directory, one daemon.

Before: a batch of 5 that failed once went out again as five one-event batches with
five new ids; `Retry-After: 31536000000` was taken as it was and replay could not push
the delivery; a second daemon on the same state directory started and sent the same
event again; a 200 whose outcome could not be recorded was sent again about every 60 s.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest
from aiohttp import web

from tests.reliability.conftest import deliveries
from tests.utils import DaemonProcess, Receiver, event, run_cli, wait_until


async def test_a_batch_is_retried_whole_under_the_same_id(daemon: DaemonProcess) -> None:
    """Newer events arrive while a failed batch waits for its retry: some while it is not
    yet due, some once it is due but the lane is still busy (a batch at a time). None of
    them joins the retry, though it has room for them (max_events 8)."""
    released = asyncio.Event()
    answered = 0

    async def down_then_slow(_receiver: Receiver, _request: web.Request) -> web.StreamResponse:
        nonlocal answered
        answered += 1
        if answered == 1:
            return web.Response(status=500)
        if answered == 2:
            await released.wait()
        return web.Response(status=200)

    receiver = await Receiver(handler=down_then_slow).start()
    try:
        daemon.add_webhook("batched", receiver.url, channel={
            "batch": {"max_events": 8, "max_wait": 0.2}, "retry_schedule": [2, 2], "timeout": 60})
        await daemon.start()
        status, _ = await daemon.post([event(number) for number in range(5)])
        assert status == 202

        async def waiting_for_retry() -> bool:
            rows = await deliveries(daemon, webhook="batched", state="pending")
            return len(rows) == 5 and all(row["attempts"] == 1 for row in rows)

        await wait_until(waiting_for_retry, 20, "the batch to fail and wait for its retry")
        due_at = max(row["next_attempt_at"] for row in await deliveries(daemon, webhook="batched"))
        # Newer events while the retry is not yet due (1.6 s at the least): a batch of
        # their own, which the endpoint holds past the retry's due time.
        status, _ = await daemon.post([event(number) for number in range(5, 10)])
        assert status == 202
        await wait_until(lambda: len(receiver.requests) == 2, 20, "the newer batch")
        await wait_until(lambda: time.time() > due_at + 0.1, 10, "the retry to fall due")
        # More while the retry is due and waits for the lane.
        status, _ = await daemon.post([event(number) for number in range(10, 13)])
        assert status == 202
        assert len(receiver.requests) == 2, "the lane is busy: the retry has not gone out"
        released.set()

        async def all_delivered() -> bool:
            rows = await deliveries(daemon, webhook="batched")
            return [row["state"] for row in rows] == ["delivered"] * 13

        await wait_until(all_delivered, 20, "the retry and the newer batches")
    finally:
        await receiver.stop()
    first, *others = receiver.requests
    retries = [r for r in others if r.headers["webhook-id"] == first.headers["webhook-id"]]
    assert [e["event_id"] for e in first.json()] == [f"e{number}" for number in range(5)]
    assert [r.body for r in retries] == [first.body], "one retry: the same members, the same body"
    newer = sorted(([e["event_id"] for e in r.json()] for r in others if r not in retries),
                   key=len, reverse=True)
    assert newer == [[f"e{number}" for number in range(5, 10)], ["e10", "e11", "e12"]]
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert len(ids) == 3, "each newer batch under an id of its own"


async def test_retry_after_counts_at_most_a_day_and_replay_now_pushes_it(
    daemon: DaemonProcess,
) -> None:
    answers = iter([503])

    async def far_away(_receiver: Receiver, _request: web.Request) -> web.StreamResponse:
        status = next(answers, 200)
        return web.Response(status=status, headers={"Retry-After": "31536000000"} if status == 503 else {})

    receiver = await Receiver(handler=far_away).start()
    try:
        daemon.add_webhook("far", receiver.url, channel={"retry_schedule": [1, 1]})
        await daemon.start()
        await daemon.post(event(1))

        async def deferred() -> bool:
            rows = await deliveries(daemon, webhook="far", state="pending")
            return bool(rows) and rows[0]["attempts"] == 1

        await wait_until(deferred, 20, "the first attempt")
        [row] = await deliveries(daemon, webhook="far", state="pending")
        assert row["next_attempt_at"] - time.time() <= 86400 + 5
        code, out, err = await run_cli("replay", "--webhook", "far", "--now", "--socket", str(daemon.socket))
        assert code == 0, err
        assert "re-queued 1" in out
        await wait_until(lambda: len(receiver.requests) == 2, 20, "the pushed delivery")
    finally:
        await receiver.stop()


async def test_a_second_daemon_on_the_same_state_directory_refuses_to_start(
    daemon: DaemonProcess, receiver: Receiver, short_tmp: Path,
) -> None:
    daemon.add_webhook("crm", receiver.url)
    await daemon.start()
    second = DaemonProcess(short_tmp / "second")
    second.config["state_dir"] = daemon.config["state_dir"]
    second.config["webhooks_dir"] = daemon.config["webhooks_dir"]
    await second.start(wait=False)
    assert second.process is not None
    assert await asyncio.wait_for(second.process.wait(), 30) != 0
    assert daemon.process is not None
    assert f"another mailhooks (pid {daemon.process.pid})" in second.logs_text()
    second.process = None
    await daemon.post(event(1))
    await wait_until(lambda: len(receiver.requests) == 1, what="the one delivery")


async def test_an_outcome_that_cannot_be_written_is_not_a_reason_to_send_again(
    daemon: DaemonProcess, short_tmp: Path,
) -> None:
    """The spool's file system turns read-only while an attempt is in flight (a disk
    full does the same to SQLite): the receiver gets the event once, intake answers 503
    until the outcome is written, and then it is."""
    state = short_tmp / "state"
    release = asyncio.Event()
    frozen = asyncio.Event()

    async def slow_ok(_receiver: Receiver, _request: web.Request) -> web.StreamResponse:
        frozen.set()
        await release.wait()
        return web.Response(status=200)

    receiver = await Receiver(handler=slow_ok).start()
    try:
        daemon.add_webhook("crm", receiver.url)
        await daemon.start()
        await daemon.post(event(1))
        await asyncio.wait_for(frozen.wait(), 20)
        for name in ("spool.db", "spool.db-wal", "spool.db-shm"):
            _block_writes(state / name)
        release.set()
        await wait_until(lambda: '"outcomes_not_recorded"' in daemon.logs_text(), 20,
                         "the daemon to say it cannot write")
        status, answer = await daemon.post(event(2))
        assert status == 503, answer
        # While it cannot write, nothing is sent again (the old code re-sent after ~60 s;
        # tests/delivery/test_lane.py wakes the lane meanwhile to show it).
        assert len(receiver.requests) == 1
        for name in ("spool.db", "spool.db-wal", "spool.db-shm"):
            _allow_writes(state / name)
        await wait_until(lambda: '"outcomes_recorded_again"' in daemon.logs_text(), 30,
                         "the outcome written at last")
        rows = await deliveries(daemon, webhook="crm")
        assert [row["state"] for row in rows] == ["delivered"]
        assert len(receiver.requests) == 1
    finally:
        await receiver.stop()


def _block_writes(path: Path) -> None:
    """chattr +i: even root cannot write the file (chmod does not stop root)."""
    if path.exists() and subprocess.run(["chattr", "+i", str(path)], check=False).returncode:
        pytest.skip("this file system has no immutable flag (chattr +i)")


def _allow_writes(path: Path) -> None:
    if path.exists():
        subprocess.run(["chattr", "-i", str(path)], check=True)



async def test_a_read_only_spool_is_not_called_damaged(daemon: DaemonProcess, short_tmp: Path) -> None:
    """Before: a spool the daemon could not write was reported as damaged, with the advice
    to move it aside and start empty, which would throw away every pending event."""
    probe = await asyncio.create_subprocess_exec("unshare", "-m", "true")
    if await probe.wait() != 0:
        pytest.skip("a read-only mount needs unshare -m (root)")
    daemon.add_webhook("crm", "https://crm.example.com/hook")
    await daemon.start()
    await daemon.post(event(1))
    assert await daemon.stop() == 0
    state = daemon.config["state_dir"]
    daemon.wrap = ["unshare", "-m", "sh", "-c",
                   f'mount --bind "{state}" "{state}" && mount -o remount,ro,bind "{state}" '
                   '&& exec "$0" "$@"']
    await daemon.start(wait=False)
    assert daemon.process is not None
    assert await asyncio.wait_for(daemon.process.wait(), 30) != 0
    daemon.process = None
    failed = [line for line in daemon.logs() if line.get("event") == "startup_failed"][-1]
    assert "cannot be written" in failed["error"] and "nothing was changed" in failed["error"]
    assert "damaged" not in failed["error"] and "aside" not in failed["error"]
