"""The Postfix and DSN sources against a real Postfix: what it logs and the bounces it
writes, not what we believe it does (postfix_rig.py runs the private instance).

One run covers each outcome: ok@ is delivered, missing@ is refused by the sink with a
550 5.1.1 (bounced, and Postfix writes a DSN), later@ gets a 451 4.3.0 until Postfix
gives up (deferred, then expired, and a DSN), and denied@ is refused by Postfix's own
smtpd (a NOQUEUE reject). About 3 seconds.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailhooks.events import Event
from mailhooks.sources import dsn, postfix
from tests.sources.postfix_rig import (
    DENIED,
    RIG_HOSTNAME,
    Received,
    postfix_with_sink,
    unavailable,
)

REASON = unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

SENDER = "bounces@example.net"
OK = "ok@example.com"
MISSING = "missing@example.com"
LATER = "later@example.com"
REPLIES = {
    MISSING: "550 5.1.1 <missing@example.com>: Recipient address rejected: User unknown",
    LATER: "451 4.3.0 <later@example.com>: Temporary failure, try again later",
}
DEADLINE = 15.0


def _logged(text: str, recipient: str, status: str) -> bool:
    return any(f"to=<{recipient}>, " in line and f"status={status}" in line for line in text.splitlines())


def _notice_about(recipient: str) -> Any:
    """A test for Postfix's notice (from the null sender) about `recipient`."""
    marker = f"Final-Recipient: rfc822; {recipient}".encode()
    return lambda message: message.mail_from == "" and marker in message.content


def _valid(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for event in events:
        Event.model_validate(event)
    return events


def _only(events: list[dict[str, Any]], name: str, email: str) -> dict[str, Any]:
    found = [event for event in events if event["event"] == name and event["email"] == email]
    assert len(found) == 1, (name, email, events)
    return found[0]


@pytest.fixture
def rig_root() -> Iterator[Path]:
    """A short directory for the instance: its sockets' paths must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="mhpf", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_events_from_a_real_postfix_log_and_its_bounces(rig_root: Path) -> None:
    started = time.monotonic()
    with postfix_with_sink(rig_root, REPLIES) as (rig, sink):
        refused = rig.attempt(SENDER, DENIED)
        ok_id = rig.send(SENDER, OK, "<ok.rig@example.net>")
        missing_id = rig.send(SENDER, MISSING, "<missing.rig@example.net>")
        later_id = rig.send(SENDER, LATER, "<later.rig@example.net>")
        log = rig.wait_for_log(
            lambda text: (_logged(text, OK, "sent") and _logged(text, MISSING, "bounced")
                          and f"{later_id}: from=<{SENDER}>, status=expired" in text),
            DEADLINE, "Postfix logs the delivery, the bounce and the expiry")
        hard: Received = sink.wait_for(_notice_about(MISSING), DEADLINE, "the bounce for missing@")
        expiry: Received = sink.wait_for(_notice_about(LATER), DEADLINE, "the expiry notice for later@")
        to_ok = sink.wait_for(lambda message: OK in message.rcpt_tos, DEADLINE, "the mail to ok@")
    assert refused[0] == 554
    assert to_ok.mail_from == SENDER
    assert time.monotonic() - started < 20

    # The log as Postfix's own maillog_file wrote it: local time, no year.
    lines = log.splitlines()
    parsed = postfix.parse_lines(lines)
    events = _valid(parsed.events)
    now = datetime.now(UTC)
    for event in events:
        assert event["sending_node"] in (RIG_HOSTNAME.split(".")[0], RIG_HOSTNAME)
        assert event["sending_domain"] == "example.net"
        moment = datetime.fromisoformat(event["timestamp"])
        assert now - timedelta(minutes=5) < moment < now + timedelta(minutes=1)

    delivered = _only(events, "delivered", OK)
    assert delivered["message_id"] == "ok.rig@example.net"
    assert (delivered["dsn_status"], delivered["smtp_code"]) == ("2.0.0", 250)
    assert delivered["metadata"]["queue_id"] == ok_id
    assert delivered["metadata"]["relay"] == f"127.0.0.1[127.0.0.1]:{sink.port}"

    bounced = _only(events, "bounced", MISSING)
    assert bounced["message_id"] == "missing.rig@example.net"
    assert (bounced["dsn_status"], bounced["smtp_code"], bounced["bounce_type"]) == ("5.1.1", 550, "hard")
    assert "User unknown" in bounced["diagnostic"]
    assert bounced["metadata"]["queue_id"] == missing_id

    delays = [event for event in events if event["event"] == "delayed"]
    assert delays
    assert {(event["email"], event["dsn_status"], event["smtp_code"]) for event in delays} == {
        (LATER, "4.3.0", 451)}
    expired = _only(events, "bounced", LATER)
    assert (expired["bounce_type"], expired["dsn_status"]) == ("expired", "4.3.0")
    assert expired["message_id"] == "later.rig@example.net"

    rejected = _only(events, "rejected", DENIED)
    assert (rejected["dsn_status"], rejected["smtp_code"]) == ("5.7.1", 554)
    assert rejected["message_id"].startswith("noqueue-")
    assert rejected["metadata"]["stage"] == "RCPT"

    # Postfix's own notices (from=<>) are delivered too, but are no events.
    assert {event["email"] for event in events} == {OK, MISSING, LATER, DENIED}
    assert {skipped.kind for skipped in parsed.skipped} == {"null-sender"}

    # The same lines again give the same ids; so does a joiner restored halfway.
    assert postfix.parse_lines(lines).events == events
    half = len(lines) // 2
    first = postfix.Joiner()
    head = postfix.parse_lines(lines[:half], first)
    tail = postfix.parse_lines(lines[half:], postfix.Joiner.restore(first.state()))
    assert head.events + tail.events == events

    # The bounce Postfix wrote for missing@, through the DSN source: the same facts.
    reports = _valid(dsn.parse_message(hard.content).events)
    assert len(reports) == 1
    report = reports[0]
    assert (report["event"], report["email"], report["bounce_type"]) == ("bounced", MISSING, "hard")
    assert (report["dsn_status"], report["smtp_code"]) == ("5.1.1", 550)
    assert report["message_id"] == bounced["message_id"]
    assert report["sending_domain"] == "example.net"
    assert report["metadata"]["postfix_queue_id"] == missing_id
    assert report["metadata"]["reporting_mta"] == RIG_HOSTNAME

    # …and the expiry notice: a failure on a temporary status.
    expiries = _valid(dsn.parse_message(expiry.content).events)
    assert [(event["event"], event["email"], event["bounce_type"], event["dsn_status"], event["message_id"])
            for event in expiries] == [("bounced", LATER, "expired", "4.3.0", "later.rig@example.net")]
