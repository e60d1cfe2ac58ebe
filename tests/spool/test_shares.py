"""What the spool keeps per webhook, on a real SQLite file: a replay re-queues no more
than the room under a webhook's cap, and a full spool gives up failed deliveries (the
oldest, of the webhooks holding the most failed bytes first) before refusing intake."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailhooks.spool import AttemptResult, NewEvent, Spool, SpoolFull


def new_event(event_id: str, webhook: str, size: int = 40) -> NewEvent:
    payload = f'{{"event_id":"{event_id}","pad":"{"x" * size}"}}'.encode()
    return NewEvent(event_id, "delivered", f"m-{event_id}", payload, (webhook,))


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    opened = await Spool.open(tmp_path / "spool.db", max_bytes=1 << 30, retention=3600)
    yield opened
    await opened.close()


async def fail(spool: Spool, webhook: str) -> list[int]:
    """Every pending delivery of `webhook` failed (as its last attempt would); their ids."""
    rows = await spool.deliveries("pending", webhook, 10_000)
    await spool.record_soon([
        AttemptResult(row.id, "failed", 1, time.time(), 500, "HTTP 500") for row in rows])
    return sorted(row.id for row in rows)


async def states(spool: Spool, webhook: str) -> dict[int, str]:
    return {row.id: row.state for row in await spool.deliveries(None, webhook, 10_000)}


async def test_a_replay_takes_the_oldest_failed_up_to_the_room_under_the_cap(spool: Spool) -> None:
    await spool.add([new_event(f"a{number}", "a") for number in range(10)])
    await spool.add([new_event(f"b{number}", "b") for number in range(4)])
    failed_a, failed_b = await fail(spool, "a"), await fail(spool, "b")
    await spool.add([new_event(f"a{number}", "a") for number in range(10, 16)])  # 6 pending

    webhooks, left = await spool.replay(webhook_id="a", caps={"a": 10})
    assert (webhooks, left) == (["a"] * 4, 6)
    now = await states(spool, "a")
    assert [now[i] for i in failed_a] == ["pending"] * 4 + ["failed"] * 6, "the oldest first"
    # At the cap: none; by ids, each webhook within its own room (b: 2 under its cap).
    assert await spool.replay(webhook_id="a", caps={"a": 10}) == ([], 6)
    webhooks, left = await spool.replay([*failed_a, *failed_b], caps={"a": 10}, default_cap=2)
    assert (sorted(webhooks), left) == (["b", "b"], 6 + 2)
    now_b = await states(spool, "b")
    assert [now_b[i] for i in failed_b] == ["pending"] * 2 + ["failed"] * 2
    # Without caps, as before: everything failed goes back.
    assert await spool.replay(webhook_id="a") == (["a"] * 6, 0)


async def test_a_full_spool_evicts_failed_from_the_biggest_holder_first(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = await Spool.open(path, max_bytes=1 << 30, retention=3600)
    try:
        await spool.add([new_event(f"big{number}", "big", 400) for number in range(600)])
        await spool.add([new_event(f"small{number}", "small", 400) for number in range(200)])
        await spool.add([new_event(f"live{number}", "live", 400) for number in range(100)])
        failed_big, failed_small = await fail(spool, "big"), await fail(spool, "small")
        used = (await spool.stats()).size_bytes
        # Below what is in use by about 150 deliveries' worth: taken from "big" alone.
        evicted = await spool.evict_failed(used - 150 * used // 900)
        assert set(evicted) == {"big"} and 150 <= evicted["big"] < 300
        kept = await states(spool, "big")
        assert min(kept) == failed_big[evicted["big"]], "the oldest went first"
        assert all(state == "failed" for state in kept.values())
        assert len(await states(spool, "small")) == len(failed_small)
        assert len(await spool.deliveries("pending", "live", 1000)) == 100
        # Asked for more than "big" holds above "small": both give, down to a level.
        evicted = await spool.evict_failed((await spool.stats()).size_bytes * 2 // 3)
        assert set(evicted) == {"big", "small"}
        left_big, left_small = len(await states(spool, "big")), len(await states(spool, "small"))
        assert abs(left_big - left_small) <= 20
        assert len(await spool.deliveries("pending", "live", 1000)) == 100
        # Nothing failed left to give: pending deliveries are what the spool must keep.
        assert set(await spool.evict_failed(0)) <= {"big", "small"}
        assert await spool.evict_failed(0) == {}
        assert len(await spool.deliveries("pending", "live", 1000)) == 100
    finally:
        await spool.close()
    with sqlite3.connect(path) as connection:  # their events went with them
        assert connection.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 100


async def test_intake_in_a_full_spool_fits_once_failed_ones_are_evicted(tmp_path: Path) -> None:
    probe = await Spool.open(tmp_path / "probe.db", max_bytes=1 << 30, retention=3600)
    try:
        empty = (await probe.stats()).size_bytes
    finally:
        await probe.close()
    spool = await Spool.open(tmp_path / "spool.db", max_bytes=empty + 200_000, retention=3600)
    try:
        number = 0
        while True:  # failed deliveries fill it
            try:
                await spool.add([new_event(f"d{number + i}", "dead", 400) for i in range(50)])
            except SpoolFull:
                break
            number += 50
            await fail(spool, "dead")
        with pytest.raises(SpoolFull):
            await spool.add([new_event("live0", "live")])
        assert await spool.evict_failed(empty + 200_000 - 2000)
        assert (await spool.add([new_event("live0", "live")])).events == 1
    finally:
        await spool.close()
