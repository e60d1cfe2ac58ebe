"""The issue's proof: a real Postfix relays to a sink that takes one recipient and
refuses another with 550 5.1.1; `mailhooks ingest postfix --file` turns its real log into
delivered and bounced events at a real receiver (through a real daemon), and the bounce
Postfix writes for the refused recipient, fed to `mailhooks ingest dsn`, gives a bounced
event with status 5.1.1 there too."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sources.postfix_rig import Received, postfix_with_sink, unavailable
from tests.utils import DaemonProcess, Receiver, run_cli, wait_until

REASON = unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

SENDER = "bounces@example.net"
OK = "ok@example.com"
MISSING = "missing@example.com"
REPLIES = {MISSING: "550 5.1.1 <missing@example.com>: Recipient address rejected: User unknown"}
DEADLINE = 15.0


@pytest.fixture
def rig_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mhpe", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def logged(text: str, recipient: str, status: str) -> bool:
    return any(f"to=<{recipient}>, " in line and f"status={status}" in line for line in text.splitlines())


def notice_about(recipient: str) -> object:
    marker = f"Final-Recipient: rfc822; {recipient}".encode()
    return lambda message: message.mail_from == "" and marker in message.content


async def test_a_real_postfix_log_and_its_bounce_reach_a_receiver(
    daemon: DaemonProcess, receiver: Receiver, rig_root: Path
) -> None:
    daemon.add_webhook("all", receiver.url)
    await daemon.start()
    with postfix_with_sink(rig_root, REPLIES) as (rig, sink):
        rig.send(SENDER, OK, "<ok.e2e@example.net>")
        missing_id = rig.send(SENDER, MISSING, "<missing.e2e@example.net>")
        await asyncio.to_thread(rig.wait_for_log, lambda text: logged(text, OK, "sent") and logged(
            text, MISSING, "bounced"), DEADLINE, "Postfix logs the delivery and the bounce")
        bounce: Received = await asyncio.to_thread(
            sink.wait_for, notice_about(MISSING), DEADLINE, "the bounce for missing@")  # type: ignore[arg-type]
        code, _, err = await run_cli("ingest", "postfix", "--file", str(rig.maillog), "--state-dir",
                                     str(rig_root / "ingest"), "--socket", str(daemon.socket))
    assert code == 0, err

    def by_source(source: str) -> list[dict[str, object]]:
        return [event for event in receiver.events() if str(event["event_id"]).startswith(source)]

    await wait_until(lambda: len(by_source("postfix:")) == 2, what="the log's two events")
    logged_events = {(event["event"], event["email"]): event for event in by_source("postfix:")}
    assert set(logged_events) == {("delivered", OK), ("bounced", MISSING)}
    bounced = logged_events[("bounced", MISSING)]
    assert (bounced["dsn_status"], bounced["smtp_code"], bounced["bounce_type"]) == ("5.1.1", 550, "hard")
    assert bounced["message_id"] == "missing.e2e@example.net"
    assert logged_events[("delivered", OK)]["message_id"] == "ok.e2e@example.net"

    code, _, err = await run_cli("ingest", "dsn", "--socket", str(daemon.socket), stdin=bounce.content)
    assert code == 0, err
    await wait_until(lambda: len(by_source("dsn:")) == 1, what="the bounce's event")
    reported = by_source("dsn:")[0]
    assert (reported["event"], reported["email"], reported["dsn_status"]) == ("bounced", MISSING, "5.1.1")
    assert reported["message_id"] == bounced["message_id"]
    assert reported["metadata"] == {**reported["metadata"], "postfix_queue_id": missing_id}  # type: ignore[dict-item]
