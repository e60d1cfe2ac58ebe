"""One endpoint never hurts the others (SPEC §5): not in time, and not in space.

Before: only delivered and dropped rows were evicted when the spool filled; one dead
webhook's pending rows made intake answer 503 for events only a healthy webhook wanted.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from tests.reliability.conftest import closed_port, deliveries, log_lines
from tests.utils import DaemonProcess, Receiver, event, run_cli, wait_until

MAX_BYTES = 1024 * 1024  # 10,000 events need about twice that
DEAD_EVENTS = 10_000
PER_POST = 500


def _ndjson(start: int, count: int, node: str) -> bytes:
    return b"\n".join(
        json.dumps(event(number, event_id=f"{node}-{number}", sending_node=node)).encode()
        for number in range(start, start + count)
    )


async def test_a_dead_webhook_cannot_starve_a_live_one_of_the_spool(
    daemon: DaemonProcess, receiver: Receiver,
) -> None:
    daemon.config["spool"] = {"max_bytes": MAX_BYTES, "retention": 0}
    daemon.add_webhook("dead", f"http://127.0.0.1:{closed_port()}/hook",
                       filters={"sending_node": ["dead"]}, channel={"retry_schedule": [3600]})
    daemon.add_webhook("live", receiver.url, filters={"sending_node": ["live"]})
    await daemon.start()
    for start in range(0, DEAD_EVENTS, PER_POST):
        status, answer = await daemon.post(None, data=_ndjson(start, PER_POST, "dead"),
                                           content_type="application/x-ndjson")
        assert status == 202, (start, answer)
    # The live webhook's events still get in and out.
    for start in range(0, 200, 50):
        status, answer = await daemon.post(None, data=_ndjson(start, 50, "live"),
                                           content_type="application/x-ndjson")
        assert status == 202, answer
    await wait_until(lambda: len(receiver.requests) == 200, 60, "the live webhook's events")

    # The dead one kept within its share: its newest pending, its oldest failed then gone.
    async def within_share() -> bool:
        rows = await deliveries(daemon, webhook="dead")
        return any(row["state"] == "failed" for row in rows) and len(rows) < DEAD_EVENTS

    await wait_until(within_share, 30, "the dead webhook kept within its share")
    _, stats = await daemon.request("GET", "/status")
    assert stats["queue"]["spool_bytes"] <= MAX_BYTES * 1.1
    kept = await deliveries(daemon, webhook="dead")
    failed = [row for row in kept if row["state"] == "failed"]
    assert failed and len(kept) < DEAD_EVENTS
    assert all("share of the spool" in row["last_error"] for row in failed)
    pending_ids = {row["event_id"] for row in kept if row["state"] == "pending"}
    assert f"dead-{DEAD_EVENTS - 1}" in pending_ids, "the newest stay pending"
    _, metrics = await daemon.request("GET", "/metrics")
    assert 'mailhooks_deliveries_total{outcome="evicted",webhook="dead"}' in metrics
    # One line per burst, not per row.
    assert 1 <= len(log_lines(daemon, "webhook_over_share", webhook="dead")) <= 5
    assert not log_lines(daemon, "webhook_over_share", webhook="live")


async def test_max_pending_caps_a_webhook_and_failed_ones_stay_replayable(
    daemon: DaemonProcess,
) -> None:
    daemon.add_webhook("capped", f"http://127.0.0.1:{closed_port()}/hook",
                       channel={"retry_schedule": [3600], "max_pending": 100})
    await daemon.start()
    status, _ = await daemon.post(None, data=_ndjson(0, 300, "x"), content_type="application/x-ndjson")
    assert status == 202

    async def capped() -> bool:
        rows = await deliveries(daemon, webhook="capped")
        return sum(row["state"] == "pending" for row in rows) <= 100 and any(
            row["state"] == "failed" for row in rows)

    await wait_until(capped, 20, "the sweep to cap the webhook")
    rows = await deliveries(daemon, webhook="capped")
    assert {row["state"] for row in rows} <= {"pending", "failed"}
    assert sum(row["state"] == "failed" for row in rows) <= 100, "failed ones are bounded too"
    # The newest stay pending; the oldest were failed, and the oldest of those evicted.
    assert "x-299" in {row["event_id"] for row in rows if row["state"] == "pending"}
    assert "x-0" not in {row["event_id"] for row in rows}
    failed_ids = [row["id"] for row in rows if row["state"] == "failed"]
    if failed_ids:
        # At its cap, a replay re-queues none: they would only be failed again.
        status, answer = await daemon.request("POST", "/deliveries/replay", {"ids": failed_ids[:3]})
        assert status == 200 and answer == {"replayed": 0, "left_failed": len(failed_ids[:3]), "paused": []}
        still = {row["id"]: row["state"] for row in await deliveries(daemon, webhook="capped")}
        assert all(still[delivery_id] == "failed" for delivery_id in failed_ids[:3])


async def test_a_replay_never_requeues_more_than_the_room_under_the_cap(daemon: DaemonProcess) -> None:
    """Before: replay turned every failed row of the webhook back to pending; the next
    sweep failed the oldest pending rows again, which were exactly the ones replayed."""
    mode = "gone"
    released = asyncio.Event()

    async def endpoint(_receiver: Receiver, _request: web.Request) -> web.StreamResponse:
        if mode == "gone":  # 410: failed at once, without opening the breaker
            return web.Response(status=410)
        await released.wait()
        return web.Response(status=200)

    receiver = await Receiver(handler=endpoint).start()
    try:
        daemon.add_webhook("capped", receiver.url, filters={"sending_node": ["x"]}, channel={
            "max_pending": 100, "retry_schedule": [3600], "timeout": 60})
        # A witness: once the sweep fails one of its two, the sweep has run.
        daemon.add_webhook("witness", f"http://127.0.0.1:{closed_port()}/hook",
                           filters={"sending_node": ["w"]},
                           channel={"max_pending": 1, "retry_schedule": [3600]})
        await daemon.start()
        status, _ = await daemon.post(None, data=_ndjson(0, 300, "x"),
                                      content_type="application/x-ndjson")
        assert status == 202

        async def failed_at_cap() -> bool:
            rows = await deliveries(daemon, webhook="capped")
            return len(rows) == 100 and all(row["state"] == "failed" for row in rows)

        await wait_until(failed_at_cap, 30, "100 failed deliveries, the rest evicted")
        failed_ids = sorted(row["id"] for row in await deliveries(daemon, webhook="capped"))
        # The endpoint comes back, slowly: 60 new deliveries stay pending meanwhile.
        mode = "held"
        status, _ = await daemon.post(None, data=_ndjson(300, 60, "x"),
                                      content_type="application/x-ndjson")
        assert status == 202
        assert len(await deliveries(daemon, webhook="capped", state="pending")) == 60
        replayed_at = time.time()
        code, out, err = await run_cli("replay", "--webhook", "capped", "--socket", str(daemon.socket))
        assert code == 0, err
        status, _ = await daemon.post(None, data=_ndjson(0, 2, "w"),
                                      content_type="application/x-ndjson")
        assert status == 202

        async def swept() -> bool:
            return bool(await deliveries(daemon, webhook="witness", state="failed"))

        await wait_until(swept, 10, "a sweep after the replay")
        released.set()

        async def drained() -> bool:
            return not await deliveries(daemon, webhook="capped", state="pending")

        await wait_until(drained, 30, "every pending delivery sent")
        rows = {row["id"]: row for row in await deliveries(daemon, webhook="capped")}
        # No row replayed was failed again: every failed row is one never re-queued.
        assert all(row["updated_at"] < replayed_at for row in rows.values()
                   if row["state"] == "failed")
        # The room under the cap (100 - 60) went to the oldest failed, in their order.
        assert [rows[i]["state"] for i in failed_ids[:40]] == ["delivered"] * 40
        assert [rows[i]["state"] for i in failed_ids[40:]] == ["failed"] * 60
        assert "re-queued 40 failed deliveries" in out
        assert "60 left failed" in out
        # Once those went out, a second replay has room for the rest.
        status, answer = await daemon.request("POST", "/deliveries/replay", {"webhook": "capped"})
        assert status == 200 and answer == {"replayed": 60, "left_failed": 0, "paused": []}
        await wait_until(drained, 30, "the rest sent")
        states = [row["state"] for row in await deliveries(daemon, webhook="capped")]
        assert states == ["delivered"] * 160
    finally:
        await receiver.stop()


async def _counted(daemon: DaemonProcess, outcome: str, webhook: str) -> float:
    _, metrics = await daemon.request("GET", "/metrics")
    name = f'mailhooks_deliveries_total{{outcome="{outcome}",webhook="{webhook}"}} '
    return next((float(line[len(name):]) for line in metrics.splitlines()
                 if line.startswith(name)), 0.0)


async def test_a_webhook_at_its_cap_logs_once_while_events_trickle_in(daemon: DaemonProcess) -> None:
    """Before: a burst was remembered only while the webhook stayed over its cap, so a
    dead webhook at its cap logged a line for every event that came in on its own."""
    dead = f"http://127.0.0.1:{closed_port()}/hook"
    daemon.add_webhook("dead", dead, filters={"sending_node": ["d"]},
                       channel={"retry_schedule": [3600], "max_pending": 10})
    # A witness at its cap too: once the sweep fails one of its, a sweep ran in which the
    # dead webhook had nothing to fail (its events trickle in, one per sweep or fewer).
    daemon.add_webhook("witness", dead, filters={"sending_node": ["w"]},
                       channel={"retry_schedule": [3600], "max_pending": 1})
    await daemon.start()
    for node, count in (("d", 10), ("w", 1)):
        status, _ = await daemon.post(None, data=_ndjson(0, count, node),
                                      content_type="application/x-ndjson")
        assert status == 202
    for number in range(1, 7):
        status, _ = await daemon.post(event(number, event_id=f"d-{9 + number}", sending_node="d"))
        assert status == 202

        async def failed(webhook: str, count: int = number) -> bool:
            return await _counted(daemon, "failed", webhook) == count

        await wait_until(lambda: failed("dead"), 10, f"the sweep to fail delivery {number}")
        status, _ = await daemon.post(event(number, event_id=f"w-{number}", sending_node="w"))
        assert status == 202
        await wait_until(lambda: failed("witness"), 10, "a sweep with nothing of the dead one's")
    [line] = log_lines(daemon, "webhook_over_share", webhook="dead")
    assert line["failed"] == 1 and line["cap"] == 10


async def test_two_dead_webhooks_cannot_starve_a_live_one_of_the_spool(
    daemon: DaemonProcess, receiver: Receiver,
) -> None:
    """Before: each dead webhook kept its share of pending and its share of failed rows
    (a quarter of the spool each by default), so two of them filled it and intake
    answered 503. Failed deliveries are what a full spool gives up first."""
    daemon.config["spool"] = {"max_bytes": MAX_BYTES, "retention": 0}
    for name in ("dead1", "dead2"):
        daemon.add_webhook(name, f"http://127.0.0.1:{closed_port()}/hook",
                           filters={"sending_node": [name]}, channel={"retry_schedule": [3600]})
    daemon.add_webhook("live", receiver.url, filters={"sending_node": ["live"]})
    await daemon.start()
    for start in range(0, DEAD_EVENTS, PER_POST):
        for name in ("dead1", "dead2"):
            status, answer = await daemon.post(None, data=_ndjson(start, PER_POST, name),
                                               content_type="application/x-ndjson")
            assert status == 202, (name, start, answer)
    for start in range(0, 200, 50):
        status, answer = await daemon.post(None, data=_ndjson(start, 50, "live"),
                                           content_type="application/x-ndjson")
        assert status == 202, answer
    await wait_until(lambda: len(receiver.requests) == 200, 60, "the live webhook's events")
    _, stats = await daemon.request("GET", "/status")
    assert stats["queue"]["spool_bytes"] <= MAX_BYTES * 1.1
    for name in ("dead1", "dead2"):
        kept = await deliveries(daemon, webhook=name)
        assert f"{name}-{DEAD_EVENTS - 1}" in {row["event_id"] for row in kept
                                               if row["state"] == "pending"}
        assert await _counted(daemon, "evicted", name) > 0
    # Room made for intake is one line per webhook per burst, not one per delivery.
    assert len(log_lines(daemon, "failed_evicted_for_intake")) <= 4
