"""What the spool keeps per webhook, on a real SQLite file: a replay re-queues no more
than the room under a webhook's cap."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailhooks.spool import AttemptResult, NewEvent, Spool


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
