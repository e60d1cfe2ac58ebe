"""The spool on a real SQLite file: group commits that merge intake, duplicates within one
commit and across commits, and attempt outcomes that wait to share a commit."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from mailhooks.spool import AttemptResult, Delivery, NewEvent, Spool


def new_event(event_id: str, *webhooks: str) -> NewEvent:
    payload = f'{{"event":"delivered","event_id":"{event_id}"}}'.encode()
    return NewEvent(event_id, "delivered", f"m-{event_id}", payload, webhooks or ("hook",))


async def due(spool: Spool, webhook_id: str, limit: int = 10,
              skip: Iterable[int] = ()) -> list[Delivery]:
    """What the webhook's lane would be handed a second from now."""
    found, _next = await spool.due_or_next(webhook_id, time.time() + 1, limit, skip)
    return found


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    opened = await Spool.open(tmp_path / "spool.db", max_bytes=1 << 30, retention=3600)
    yield opened
    await opened.close()


async def test_requests_sharing_a_commit_spool_a_repeated_event_id_once(spool: Spool) -> None:
    # Queued together, the three requests are one commit: the second and third repeat
    # the first's event, and the third also its own.
    counts = await asyncio.gather(
        spool.add([new_event("a", "hook", "crm")]),
        spool.add([new_event("a"), new_event("b")]),
        spool.add([new_event("b"), new_event("b"), new_event("c")]),
    )
    assert [added.events for added in counts] == [1, 1, 1]
    pending = await due(spool, "hook")
    assert [delivery.event_id for delivery in pending] == ["a", "b", "c"]
    assert [delivery.event_id for delivery in await due(spool, "crm")] == ["a"]
    assert pending[0].payload == b'{"event":"delivered","event_id":"a"}'
    # Each request is handed the deliveries of its own new events, as the lanes would
    # fetch them (but for the time's last digits: SQLite's JSON keeps 15); a repeated
    # event_id gets none.
    handed = sorted((d for added in counts for d in added.deliveries), key=lambda d: d.id)
    fetched = sorted([*pending, *await due(spool, "crm")], key=lambda d: d.id)
    assert [d._replace(created_at=0) for d in handed] == [
        d._replace(created_at=0) for d in fetched]
    assert [d.created_at for d in handed] == pytest.approx([d.created_at for d in fetched],
                                                          abs=0.001)
    assert [[(d.event_id, d.webhook_id) for d in added.deliveries] for added in counts] == [
        [("a", "hook"), ("a", "crm")], [("b", "hook")], [("c", "hook")],
    ]


async def test_an_event_id_seen_in_an_earlier_commit_is_acknowledged_not_spooled(
    spool: Spool,
) -> None:
    assert (await spool.add([new_event("a")])).events == 1
    repeated = await spool.add([new_event("a"), new_event("b")])
    assert repeated.events == 1
    assert [delivery.event_id for delivery in repeated.deliveries] == ["b"]
    assert len(await due(spool, "hook")) == 2


async def test_without_hand_over_the_deliveries_are_only_spooled(spool: Spool) -> None:
    # Sharing a commit with a request that wants its deliveries back changes nothing.
    kept, handed = await asyncio.gather(spool.add([new_event("a")], hand_over=False),
                                        spool.add([new_event("b")]))
    assert (kept.events, kept.deliveries) == (1, [])
    assert [delivery.event_id for delivery in handed.deliveries] == ["b"]
    assert [delivery.event_id for delivery in await due(spool, "hook")] == ["a", "b"]


async def test_outcomes_queued_before_intake_are_committed_with_it(spool: Spool) -> None:
    await spool.add([new_event("a"), new_event("b")])
    first, second = await due(spool, "hook")
    later = time.time() + 600
    stored = spool.record_soon([
        AttemptResult(first.id, "delivered", 1, time.time(), 200, None),
        AttemptResult(second.id, "pending", 1, later, 503, "HTTP 503 Service Unavailable"),
    ])
    # Intake queued while the outcomes wait for company ends the wait.
    assert (await spool.add([new_event("c")])).events == 1
    await stored
    records = {record.event_id: record for record in await spool.deliveries()}
    assert records["a"].state == "delivered" and records["a"].last_status == 200
    assert records["b"].state == "pending" and records["b"].attempts == 1
    assert records["b"].next_attempt_at == pytest.approx(later)
    assert records["b"].last_error == "HTTP 503 Service Unavailable"
    assert records["c"].state == "pending" and records["c"].attempts == 0


async def test_an_outcome_never_overwrites_a_delivery_no_longer_pending(spool: Spool) -> None:
    await spool.add([new_event("a")])
    [delivery] = await due(spool, "hook")
    await spool.record_soon([AttemptResult(delivery.id, "failed", 7, time.time(), 500, "gave up")])
    await spool.record_soon([AttemptResult(delivery.id, "delivered", 8, time.time(), 200, None)])
    [record] = await spool.deliveries()
    assert (record.state, record.attempts, record.last_error) == ("failed", 7, "gave up")


async def test_close_commits_outcomes_still_queued(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = await Spool.open(path, max_bytes=1 << 30, retention=3600)
    await spool.add([new_event("a")])
    [delivery] = await due(spool, "hook")
    spool.record_soon([AttemptResult(delivery.id, "delivered", 1, time.time(), 200, None)])
    await spool.close()
    reopened = await Spool.open(path, max_bytes=1 << 30, retention=3600)
    try:
        [record] = await reopened.deliveries()
        assert record.state == "delivered"
    finally:
        await reopened.close()


async def test_due_deliveries_carry_their_payload_byte_for_byte(spool: Spool) -> None:
    payload = json.dumps({"event": "delivered", "email": "zoë@exämple.com", "subject": "🎉 \"hi\"\n",
                          "path": "C:\\\\x", "raw": "\u001e"}, ensure_ascii=False).encode()
    await spool.add([NewEvent("a", "delivered", "m-a", payload, ("hook",)),
                     NewEvent("b", "delivered", "m-b", b'{"event":"delivered"}', ("hook",))])
    first, second = await due(spool, "hook")
    assert (first.event_id, first.payload) == ("a", payload)
    assert (second.event_id, second.payload) == ("b", b'{"event":"delivered"}')
    assert (first.webhook_id, first.message_id, first.event_name, first.attempts) == (
        "hook", "m-a", "delivered", 0)
    assert first.created_at == pytest.approx(time.time(), abs=5)
    # Claimed deliveries are skipped, and the limit counts only the rest.
    assert [d.event_id for d in await due(spool, "hook", 1, skip={first.id})] == ["b"]


async def test_due_or_next_gives_the_due_deliveries_or_when_the_next_falls_due(
    spool: Spool,
) -> None:
    assert await spool.due_or_next("hook", time.time(), 10) == ([], None)  # nothing pending
    await spool.add([new_event("a"), new_event("b")])
    now = time.time() + 1
    first, second = (await spool.due_or_next("hook", now, 10))[0]
    assert (first.event_id, second.event_id) == ("a", "b")
    later = now + 600
    await spool.record_soon([
        AttemptResult(first.id, "delivered", 1, now, 200, None),
        AttemptResult(second.id, "pending", 1, later, 503, "HTTP 503 Service Unavailable"),
    ])
    # Nothing is due now: the answer is when the retry falls due.
    assert await spool.due_or_next("hook", now, 10) == ([], later)
    [retry] = (await spool.due_or_next("hook", later, 10))[0]
    assert (retry.event_id, retry.attempts) == ("b", 1)
    # A delivery being attempted (skipped) is not reported as due again.
    assert (await spool.due_or_next("hook", later, 10, skip={retry.id}))[0] == []
