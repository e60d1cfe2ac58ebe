"""`mailhooks ingest pmta` and `ingest postfix` as real processes against a real daemon
and a receiver: nothing lost across a restart of either, nothing sent twice."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

from tests.ingest.conftest import Ingester, delivered_ids
from tests.utils import DaemonProcess, Receiver, run_cli, wait_until

HEADER = b"type,timeLogged,orig,rcpt,dsnStatus,dsnDiag,bounceCat,dlvSourceIp,vmta,jobId,header_Message-Id\r\n"


def pmta_rows(first: int, last: int) -> bytes:
    return b"".join(
        b"d,2024-06-03 18:00:00+0200,news@mail.example.com,r%d@example.org,2.0.0 (success),"
        b"smtp;250 2.0.0 OK,,192.0.2.10,vmta1,spring,<m%d@mail.example.com>\r\n" % (number, number)
        for number in range(first, last))


async def test_pmta_on_a_pipe_loses_no_line_when_the_daemon_restarts(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    daemon.add_webhook("all", receiver.url)
    await daemon.start()
    ingester = await Ingester("pmta", "--socket", str(daemon.socket)).start()
    try:
        await ingester.write(HEADER + pmta_rows(0, 10))
        await wait_until(lambda: len(delivered_ids(receiver)) == 10, what="the first ten")
        await daemon.stop()
        await ingester.write(pmta_rows(10, 30))
        await wait_until(lambda: ingester.said("cannot take events now"), what="the outage said")
        await daemon.start()
        await ingester.write(pmta_rows(30, 40))
        assert await ingester.close() == 0
    finally:
        await ingester.kill()
    await wait_until(lambda: len(delivered_ids(receiver)) == 40, 30, "every line's event")
    counts = delivered_ids(receiver)
    assert set(counts.values()) == {1}
    assert {event["email"] for event in receiver.events()} == {f"r{n}@example.org" for n in range(40)}
    outages = [line for line in ingester.stderr if "cannot take events now" in line]
    assert len(outages) == 1, ingester.stderr
    assert ingester.said("read 41 line(s): 40 event(s) sent, 40 event(s) accepted")


def message_lines(number: int, *, part: str = "all") -> str:
    """Postfix's lines for one message delivered to r{number}@example.org; `part` head
    (cleanup and qmgr) or tail (the delivery and the removal)."""
    queue_id = f"{0xA1000 + number:X}"
    at = f"2024-06-03T10:{number // 60:02d}:{number % 60:02d}+00:00 mx1"
    head = (f"{at} postfix/cleanup[100]: {queue_id}: message-id=<m{number}@example.net>\n"
            f"{at} postfix/qmgr[101]: {queue_id}: from=<news@example.net>, size=1000, nrcpt=1 "
            "(queue active)\n")
    tail = (f"{at} postfix/smtp[102]: {queue_id}: to=<r{number}@example.org>, relay=mx.example.org"
            f"[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok)\n"
            f"{at} postfix/qmgr[101]: {queue_id}: removed\n")
    return {"head": head, "tail": tail}.get(part, head + tail)


def append(path: Path, text: str) -> None:
    with path.open("a") as file:
        file.write(text)


def delivered_to(receiver: Receiver) -> dict[str, str]:
    events = receiver.events()
    return {event["email"]: event["message_id"] for event in events if event["event"] == "delivered"}


async def test_postfix_follows_a_file_across_rotation_and_resumes_from_its_cursor(
    daemon: DaemonProcess, receiver: Receiver, short_tmp: Path
) -> None:
    daemon.add_webhook("all", receiver.url)
    await daemon.start()
    log, state = short_tmp / "mail.log", short_tmp / "ingest-state"
    log.write_text(message_lines(1))
    args = ("postfix", "--follow", "--file", str(log), "--state-dir", str(state),
            "--socket", str(daemon.socket))
    first = await Ingester(*args).start()
    try:
        await wait_until(lambda: "r1@example.org" in delivered_to(receiver), what="message 1")
        append(log, message_lines(2, part="head"))
        await wait_until(lambda: bool(list(state.glob("postfix-file-*.json"))), what="a checkpoint")
        log.rename(short_tmp / "mail.log.1")
        log.write_text(message_lines(2, part="tail") + message_lines(3))
        await wait_until(lambda: len(delivered_to(receiver)) == 3, what="messages 2 and 3")
        assert await first.stop() == 0
    finally:
        await first.kill()
    # Message 2's Message-ID was in the old file, its delivery in the new one.
    assert delivered_to(receiver)["r2@example.org"] == "m2@example.net"
    assert first.said("was rotated")

    append(log, message_lines(4, part="head"))  # while nothing reads the log
    log.rename(short_tmp / "mail.log.2")
    log.write_text(message_lines(4, part="tail") + message_lines(5))
    second = await Ingester(*args).start()
    try:
        await wait_until(lambda: len(delivered_to(receiver)) == 5, what="messages 4 and 5")
        assert await second.stop() == 0
    finally:
        await second.kill()
    assert delivered_to(receiver)["r4@example.org"] == "m4@example.net"
    assert set(delivered_ids(receiver).values()) == {1}
    # The second run sent only what the first had not: nothing the daemon already knew.
    assert second.said("2 event(s) sent, 2 event(s) accepted"), second.stderr
    assert not second.said("already known")
    checkpoint = next(state.glob("postfix-file-*.json"))
    assert stat.S_IMODE(checkpoint.stat().st_mode) == 0o600
    assert json.loads(checkpoint.read_text())["position"]["inode"] == log.stat().st_ino


async def test_postfix_without_follow_reads_what_is_there_and_the_next_run_what_came(
    daemon: DaemonProcess, receiver: Receiver, short_tmp: Path
) -> None:
    daemon.add_webhook("all", receiver.url)
    await daemon.start()
    log = short_tmp / "mail.log"
    log.write_text(message_lines(1) + message_lines(2, part="head"))
    args = ("postfix", "--file", str(log), "--state-dir", str(short_tmp / "st"),
            "--socket", str(daemon.socket))
    code, _, err = await run_cli("ingest", *args)
    assert code == 0, err
    append(log, message_lines(2, part="tail"))
    code, _, err = await run_cli("ingest", *args)
    assert (code, "1 event(s) sent, 1 event(s) accepted" in err) == (0, True), err
    await wait_until(lambda: len(delivered_to(receiver)) == 2, what="both messages")
    assert delivered_to(receiver)["r2@example.org"] == "m2@example.net"  # joined across the runs


# journalctl -o json as the ingester runs it, over a file of entries: --after-cursor,
# --lines=1, --follow (polling the file); no file is journalctl's answer to a unit pattern
# that matches nothing yet.
FAKE_JOURNALCTL = '''
import json, os, sys, time
path, args = sys.argv[1], sys.argv[2:]
if not os.path.exists(path):
    sys.exit("Failed to add filter for units: No data available")
entries = [json.loads(line) for line in open(path)]
after = next((a.split("=", 1)[1] for a in args if a.startswith("--after-cursor=")), None)
if after is not None:
    entries = entries[[e["__CURSOR"] for e in entries].index(after) + 1:]
elif "--lines=1" in args:
    entries = entries[-1:]
for entry in entries:
    print(json.dumps(entry), flush=True)
seen = sum(1 for _ in open(path))
while "--follow" in args:
    lines = open(path).read().splitlines()
    for line in lines[seen:]:
        print(line, flush=True)
    seen = len(lines)
    time.sleep(0.05)
'''


def fake_journalctl(root: Path, journal: Path) -> dict[str, str]:
    """The environment in which `journalctl` is the fake, reading `journal`."""
    (root / "bin").mkdir(exist_ok=True)
    (root / "fake.py").write_text(FAKE_JOURNALCTL)
    fake = root / "bin" / "journalctl"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} {root / 'fake.py'} {journal} \"$@\"\n")
    fake.chmod(0o755)
    return {"PATH": f"{root / 'bin'}:/usr/bin:/bin"}


def journal_entries(path: Path, first: int, last: int) -> None:
    """Entries of `journalctl -o json` for messages first..last-1, appended to `path`."""
    with path.open("a") as file:
        for number in range(first, last):
            for index, text in enumerate(message_lines(number).splitlines()):
                _, host, tag, message = text.split(" ", 3)
                program, pid = tag.rstrip(":").rstrip("]").split("[")
                file.write(json.dumps({
                    "__CURSOR": f"s=1;i={number * 10 + index:x}", "__REALTIME_TIMESTAMP": str(
                        1717408800000000 + number * 1000000), "_HOSTNAME": host,
                    "SYSLOG_IDENTIFIER": program, "SYSLOG_PID": pid, "MESSAGE": message}) + "\n")


async def test_postfix_from_the_journal_resumes_after_its_cursor(
    daemon: DaemonProcess, receiver: Receiver, short_tmp: Path
) -> None:
    daemon.add_webhook("all", receiver.url)
    await daemon.start()
    journal = short_tmp / "journal.jsonl"
    journal_entries(journal, 1, 3)
    env = fake_journalctl(short_tmp, journal)
    args = ("ingest", "postfix", "--state-dir", str(short_tmp / "st"), "--socket", str(daemon.socket))
    code, _, err = await run_cli(*args, "--start", "beginning", env=env)
    assert code == 0 and "2 event(s) sent" in err, err
    code, _, err = await run_cli(*args, env=env)
    assert code == 0 and "0 event(s) sent" in err, err
    journal_entries(journal, 3, 4)
    code, _, err = await run_cli(*args, env=env)
    assert code == 0 and "1 event(s) sent, 1 event(s) accepted" in err, err
    await wait_until(lambda: len(delivered_to(receiver)) == 3, what="three messages")
    assert set(delivered_ids(receiver).values()) == {1}


async def test_a_log_file_that_cannot_be_read_is_exit_2_in_one_line(short_tmp: Path) -> None:
    code, out, err = await run_cli("ingest", "postfix", "--file", str(short_tmp / "none.log"), "--state-dir",
                                   str(short_tmp / "st"), "--socket", str(short_tmp / "s.sock"))
    assert (code, out) == (2, "")
    assert err == f"mailhooks ingest: cannot read {short_tmp / 'none.log'}: no such file\n"


async def test_following_the_journal_waits_for_postfix_to_log_at_all(
    daemon: DaemonProcess, receiver: Receiver, short_tmp: Path
) -> None:
    daemon.add_webhook("all", receiver.url)
    await daemon.start()
    journal = short_tmp / "journal.jsonl"
    args = ("postfix", "--follow", "--start", "beginning", "--state-dir", str(short_tmp / "st"),
            "--socket", str(daemon.socket))
    ingester = await Ingester(*args, env=fake_journalctl(short_tmp, journal)).start()
    try:
        await wait_until(lambda: ingester.said("No data available"), what="journalctl's failure said")
        journal_entries(journal, 1, 2)
        await wait_until(lambda: len(delivered_to(receiver)) == 1, what="the first message")
        journal_entries(journal, 2, 3)
        await wait_until(lambda: len(delivered_to(receiver)) == 2, what="a message logged while followed")
        assert await ingester.stop() == 0
    finally:
        await ingester.kill()
    assert len([line for line in ingester.stderr if "No data available" in line]) == 1
