"""The feed: batches by size and by time, checkpoints only after the daemon accepted,
retries within its patience (one log line per outage), refusals counted, 413 split."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from aiohttp import web

from mailhooks.ingest.feed import EVENTS, KUMOMTA, Feed, GaveUp
from tests.ingest.conftest import Answer, StandIn, accept
from tests.utils import wait_until


def items(count: int, start: int = 0) -> list[bytes]:
    return [json.dumps({"n": number}).encode() for number in range(start, start + count)]


def failing(times: int, status: int = 503) -> tuple[list[int], Answer]:
    """An answer that fails `times` times, then accepts; and the list of statuses given."""
    given: list[int] = []

    def answer(body: bytes) -> web.Response:
        if len(given) < times:
            given.append(status)
            return web.json_response({"error": "spool is full; retry later"}, status=status)
        given.append(202)
        return accept(body)

    return given, answer


async def test_batches_of_max_events_and_the_rest_on_close(stand_in: StandIn) -> None:
    logs: list[str] = []
    feed = Feed(stand_in.socket, EVENTS, log=logs.append, patience=None, max_events=3, max_wait=60)
    async with feed:
        await feed.put(items(7))
        await wait_until(lambda: len(stand_in.bodies) == 2, what="two full batches")
    assert [len(body.splitlines()) for body in stand_in.bodies] == [3, 3, 1]
    assert [item["n"] for item in stand_in.items()] == list(range(7))
    assert feed.counts.accepted == 7
    assert logs == []


async def test_a_partial_batch_goes_once_its_oldest_waited_max_wait(stand_in: StandIn) -> None:
    async with Feed(stand_in.socket, EVENTS, log=print, patience=None, max_events=100, max_wait=0.2) as feed:
        started = time.monotonic()
        await feed.put(items(2))
        await wait_until(lambda: len(stand_in.bodies) == 1, 5, "the timed batch")
        assert 0.15 < time.monotonic() - started < 2


async def test_kumomta_records_go_as_one_json_array(stand_in: StandIn) -> None:
    async with Feed(stand_in.socket, KUMOMTA, log=print, patience=None) as feed:
        await feed.put(items(3))
    assert stand_in.bodies == [b'[{"n": 0},{"n": 1},{"n": 2}]']


async def test_a_mark_is_reached_only_once_everything_before_it_is_accepted(stand_in: StandIn) -> None:
    given, stand_in.answer = failing(2)
    reached: list[str] = []
    logs: list[str] = []
    async with Feed(stand_in.socket, EVENTS, log=logs.append, patience=None, max_events=10, max_wait=0,
                    on_checkpoint=reached.append) as feed:
        feed.mark("before anything")
        assert reached == ["before anything"]
        await feed.put(items(4))
        feed.mark("after four")
        await wait_until(lambda: len(given) >= 1, what="a refused try")
        assert reached == ["before anything"]
        await wait_until(lambda: reached[-1] == "after four", 10, "the mark after the retries")
    assert given == [503, 503, 202]
    assert len(logs) == 2, logs  # one line when the outage starts, one when it ends
    assert "cannot take events now" in logs[0] and "spool is full" in logs[0]
    assert "again" in logs[1]


async def test_patience_zero_gives_up_at_the_first_failure(stand_in: StandIn) -> None:
    _, stand_in.answer = failing(1)
    with pytest.raises(GaveUp, match="503"):
        async with Feed(stand_in.socket, EVENTS, log=print, patience=0) as feed:
            await feed.put(items(1))


async def test_no_socket_is_an_outage(short_tmp: Path) -> None:
    with pytest.raises(GaveUp, match="cannot reach the daemon"):
        async with Feed(short_tmp / "none.sock", EVENTS, log=print, patience=0) as feed:
            await feed.put(items(1))


async def test_a_bounded_patience_retries_then_gives_up(short_tmp: Path) -> None:
    logs: list[str] = []
    started = time.monotonic()
    with pytest.raises(GaveUp):
        async with Feed(short_tmp / "none.sock", EVENTS, log=logs.append, patience=1.0) as feed:
            await feed.put(items(1))
    assert 0.5 < time.monotonic() - started < 3
    assert len(logs) == 1


async def test_hurry_ends_a_patient_wait(stand_in: StandIn) -> None:
    _, stand_in.answer = failing(10**6)
    feed = Feed(stand_in.socket, EVENTS, log=print, patience=None)
    started = time.monotonic()
    with pytest.raises(GaveUp):
        async with feed:
            await feed.put(items(1))
            await wait_until(lambda: bool(stand_in.bodies), what="a first try")
            feed.hurry(0.3)
    assert time.monotonic() - started < 3


async def test_too_large_splits_the_batch_until_it_fits(stand_in: StandIn) -> None:
    def answer(body: bytes) -> web.Response:
        if len(body.splitlines()) > 2:
            return web.json_response({"error": "too many events"}, status=413)
        return accept(body)

    stand_in.answer = answer
    async with Feed(stand_in.socket, EVENTS, log=print, patience=None, max_events=8) as feed:
        await feed.put(items(7))
    accepted = [json.loads(line)["n"] for body in stand_in.bodies if len(body.splitlines()) <= 2
                for line in body.splitlines()]
    assert accepted == list(range(7))
    assert feed.counts.accepted == 7


async def test_a_refused_batch_is_counted_and_said_and_the_feed_goes_on(stand_in: StandIn) -> None:
    def answer(body: bytes) -> web.Response:
        if b'"n": 0' in body:
            return web.json_response({"error": "invalid events", "details": [
                {"index": 0, "field": "email", "message": "not an address"}]}, status=400)
        return accept(body)

    stand_in.answer = answer
    logs: list[str] = []
    reached: list[int] = []
    async with Feed(stand_in.socket, EVENTS, log=logs.append, patience=None, max_events=1,
                    on_checkpoint=reached.append) as feed:
        await feed.put(items(3))
        feed.mark(3)
    assert (feed.counts.refused, feed.counts.accepted) == (1, 2)
    assert reached == [3]
    assert len(logs) == 1 and "refused 1 item(s) for good (400)" in logs[0] and "email" in logs[0]


async def test_put_waits_while_the_backlog_is_full(stand_in: StandIn) -> None:
    given, stand_in.answer = failing(3)
    async with Feed(stand_in.socket, EVENTS, log=print, patience=None, max_events=2,
                    max_backlog=4) as feed:
        await feed.put(items(3))  # under the backlog: taken at once
        await wait_until(lambda: len(given) >= 1, what="a refused try")
        started = time.monotonic()
        await feed.put(items(2, 3))  # over it: held until the daemon took a batch
        assert time.monotonic() - started > 0.2
        assert 202 in given
    taken = [body for body, status in zip(stand_in.bodies, given, strict=True) if status == 202]
    assert [json.loads(line)["n"] for body in taken for line in body.splitlines()] == list(range(5))
