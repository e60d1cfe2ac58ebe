"""One endpoint never hurts the others (SPEC §5): not in time, and not in space.

Before: only delivered and dropped rows were evicted when the spool filled; one dead
webhook's pending rows made intake answer 503 for events only a healthy webhook wanted.
"""

from __future__ import annotations

import json

from tests.reliability.conftest import closed_port, deliveries, log_lines
from tests.utils import DaemonProcess, Receiver, event, wait_until

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
        status, answer = await daemon.request("POST", "/deliveries/replay", {"ids": failed_ids[:3]})
        assert status == 200 and answer["replayed"] == len(failed_ids[:3])
