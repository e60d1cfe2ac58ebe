"""A service's pace per destination: bursts, then one request per token; per-minute caps."""

from __future__ import annotations

from mailhooks.channels.base import Rate
from mailhooks.delivery.pace import Pacer


def test_a_burst_then_the_rate() -> None:
    pacer, rate = Pacer(), Rate(per_second=1, burst=2)
    assert pacer.delay("a", rate, 100.0) == 0 and pacer.delay("a", rate, 100.0) == 0
    assert pacer.delay("a", rate, 100.0) == 1.0
    assert pacer.delay("a", rate, 100.5) == 0.5
    assert pacer.delay("a", rate, 101.0) == 0
    assert pacer.delay("b", rate, 101.0) == 0, "destinations are paced apart"


def test_a_per_minute_cap() -> None:
    pacer, rate = Pacer(), Rate(per_second=100, burst=100, per_minute=20)
    for _ in range(20):
        assert pacer.delay("group", rate, 0.0) == 0
    assert pacer.delay("group", rate, 1.0) == 59.0
    assert pacer.delay("group", rate, 60.0) == 0
