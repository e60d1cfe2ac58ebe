"""The share keeper's log: one line per webhook per interval at most, however its rows
fail (in a burst, or one at a time as events trickle in to a webhook at its cap), each
line counting the rows since the previous one."""

from __future__ import annotations

from structlog.testing import capture_logs

from mailhooks.delivery.shares import LOG_EVERY, BurstLog


def test_one_line_per_webhook_per_interval_counting_the_rows_since_the_last() -> None:
    now = 1000.0
    burst = BurstLog("webhook_over_share", "a hint", clock=lambda: now)
    with capture_logs() as logs:
        burst.note("dead", {"failed": 3, "evicted": 0}, cap=10)
        for _ in range(5):  # a row now and then, within the interval: no line
            now += 2
            burst.note("dead", {"failed": 1, "evicted": 1}, cap=10)
        burst.note("other", {"failed": 1, "evicted": 0}, cap=5)  # each webhook its own
        now = 1000.0 + LOG_EVERY
        burst.note("dead", {"failed": 1, "evicted": 0}, cap=10)
    lines = [(line["webhook"], line["failed"], line["evicted"]) for line in logs]
    assert lines == [("dead", 3, 0), ("other", 1, 0), ("dead", 6, 5)]
    assert all(line["log_level"] == "warning" and line["hint"] == "a hint" for line in logs)
    assert logs[-1]["cap"] == 10


def test_the_rows_held_back_are_told_with_the_next_line_however_late() -> None:
    now = 0.0
    burst = BurstLog("failed_evicted_for_intake", "a hint", clock=lambda: now)
    with capture_logs() as logs:
        burst.note("dead", {"evicted": 10})
        now = 1.0
        burst.note("dead", {"evicted": 7})  # held back
        now = 10 * LOG_EVERY  # quiet for long
        burst.note("dead", {"evicted": 1})
    assert [line["evicted"] for line in logs] == [10, 8]
