"""`mailhooks ingest dsn` as the MTA's pipe transport runs it: 0 once handled, 75 when
the daemon cannot take the message now, 0 with one line on stderr for a message that
gives no event (never a bounce loop, never a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from tests.ingest.conftest import StandIn
from tests.utils import DaemonProcess, Receiver, run_cli, wait_until

FIXTURES = Path(__file__).resolve().parent.parent / "sources" / "fixtures" / "dsn"
BOUNCE = (FIXTURES / "positive" / "postfix-3.7-user-unknown.eml").read_bytes()
COMPLAINT = (FIXTURES / "positive" / "rfc5965-b2-full.eml").read_bytes()


async def test_a_bounce_is_handled_once(daemon: DaemonProcess, receiver: Receiver) -> None:
    daemon.add_webhook("all", receiver.url)
    await daemon.start()
    code, _, err = await run_cli("ingest", "dsn", "--socket", str(daemon.socket), stdin=BOUNCE)
    assert code == 0, err
    await wait_until(lambda: len(receiver.events()) == 1, what="the bounce")
    event = receiver.events()[0]
    assert (event["event"], event["email"], event["dsn_status"], event["smtp_code"]) == (
        "bounced", "missing@example.com", "5.1.1", 550)
    assert event["event_id"].startswith("dsn:")
    code, _, err = await run_cli("ingest", "dsn", "--socket", str(daemon.socket), stdin=BOUNCE)
    assert code == 0 and "1 already known" in err, err
    code, _, err = await run_cli("ingest", "dsn", "--socket", str(daemon.socket), stdin=COMPLAINT)
    assert code == 0, err
    await wait_until(lambda: [e["event"] for e in receiver.events()] == ["bounced", "complaint"],
                     what="the complaint")


async def test_no_daemon_is_exit_75(short_tmp: Path) -> None:
    code, out, err = await run_cli("ingest", "dsn", "--socket", str(short_tmp / "none.sock"), stdin=BOUNCE)
    assert (code, out) == (75, "")
    assert "cannot reach the daemon" in err and "exit 75" in err
    assert "Traceback" not in err


async def test_a_config_that_cannot_be_read_is_exit_78(short_tmp: Path) -> None:
    # Postfix defers on 78 (EX_CONFIG) as on 75; the 2 a usage error gets elsewhere would
    # bounce the report to the null sender, which drops it.
    broken = short_tmp / "broken.yaml"
    broken.write_text("spool: [not, a, mapping]\n")
    for config in (short_tmp / "missing.yaml", broken):
        code, out, err = await run_cli("ingest", "dsn", "--config", str(config),
                                       "--socket", str(short_tmp / "none.sock"), stdin=BOUNCE)
        assert (code, out) == (78, ""), err
        assert err.count("\n") == 1 and "exit 78, for the MTA to keep the message" in err, err
    # Any other source keeps the usual usage code.
    code, _, _ = await run_cli("ingest", "pmta", "--config", str(short_tmp / "missing.yaml"), stdin=b"")
    assert code == 2


@pytest.mark.parametrize("status", [503, 500, 502, 403])
async def test_a_daemon_that_cannot_take_it_now_is_exit_75(stand_in: StandIn, status: int) -> None:
    stand_in.answer = lambda _body: web.json_response({"error": "not now"}, status=status)
    code, _, err = await run_cli("ingest", "dsn", "--socket", str(stand_in.socket), stdin=BOUNCE)
    assert code == 75, err
    assert len(stand_in.bodies) == 1  # at once: the MTA does the retrying


async def test_a_refusal_for_good_is_exit_1(stand_in: StandIn) -> None:
    stand_in.answer = lambda _body: web.json_response({"error": "invalid"}, status=400)
    code, _, err = await run_cli("ingest", "dsn", "--socket", str(stand_in.socket), stdin=BOUNCE)
    assert code == 1 and "refused 1 item(s) for good (400)" in err, err


@pytest.mark.parametrize("message", [
    b"",
    b"\xff\xfe\x00garbage",
    b"From: MAILER-DAEMON@example.org\nSubject: Undelivered Mail\n\nsorry",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n" * 2000,
    (FIXTURES / "negative" / "mdn-read-receipt.eml").read_bytes(),
])
async def test_a_message_that_gives_no_event_is_exit_0_and_said(short_tmp: Path, message: bytes) -> None:
    # No daemon at all: nothing is sent, so none is needed.
    code, out, err = await run_cli("ingest", "dsn", "--socket", str(short_tmp / "none.sock"), stdin=message)
    assert (code, out) == (0, ""), err
    assert "skipped a record" in err and "nothing sent" in err
    assert "Traceback" not in err
