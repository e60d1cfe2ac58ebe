"""Postfix's log → events: one case per fixture file, the line formats, the joiner's
memory and state, and hostile input.

A fixture is `fixtures/postfix/{positive,negative}/NAME.log` (lines of a file, read with
`now` in January 2025 and the zone UTC) or `NAME.jsonl` (`journalctl -o json` entries),
beside `NAME.expected.json`: `{"events": [...], "skipped": [kinds]}`. A positive case gives
events, a negative one none. A new case is a new pair of files;
`MAILHOOKS_UPDATE_FIXTURES=1` writes the expectations of the cases that have none, to be
read before they are committed.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailhooks.sources import postfix
from mailhooks.sources.postfix import Joiner, LogLine, parse_journal_entry, parse_lines, parse_syslog_line
from mailhooks.sources.records import Parsed
from tests.sources.expectations import assert_as_expected, assert_every_case_has_its_expectation
from tests.sources.expectations import assert_well_formed as assert_shape

FIXTURES = Path(__file__).parent / "fixtures" / "postfix"
INPUT_SUFFIXES = (".log", ".jsonl")
CASES = sorted(path for kind in ("positive", "negative") for path in (FIXTURES / kind).iterdir()
               if path.suffix in INPUT_SUFFIXES)
NOW = datetime(2025, 1, 2, 12, 0, tzinfo=UTC)
PROPERTY_SETTINGS = settings(database=None, deadline=None, max_examples=300,
                             suppress_health_check=[HealthCheck.too_slow])
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def lines_of(case: Path) -> list[LogLine | None]:
    """The case's records as LogLines (None where a record is none)."""
    text = case.read_bytes().decode("utf-8", "replace")
    if case.suffix == ".jsonl":
        return [parse_journal_entry(json.loads(record)) for record in text.splitlines() if record.strip()]
    return [parse_syslog_line(line, now=NOW, tz=UTC) for line in text.splitlines()]


def feed(lines: list[LogLine | None], joiner: Joiner | None = None) -> Parsed:
    joiner = joiner if joiner is not None else Joiner()
    result = Parsed()
    for line in lines:
        if line is not None:
            result.extend(joiner.feed(line))
    return result


def assert_well_formed(parsed: Parsed) -> None:
    assert_shape(parsed, postfix.SKIP_KINDS)


def line(message: str, *, program: str = "postfix/smtp", at: datetime = T0, host: str = "mx1",
         pid: int | None = 100) -> LogLine:
    return LogLine(timestamp=at, host=host, program=program, pid=pid, message=message)


# -- the fixtures --------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_fixture(case: Path) -> None:
    parsed = feed(lines_of(case))
    assert_as_expected(case, parsed)
    assert_well_formed(parsed)
    if case.parent.name == "positive":
        assert parsed.events
    else:
        assert not parsed.events


def test_every_fixture_has_its_expectation_and_no_expectation_is_orphaned() -> None:
    assert_every_case_has_its_expectation(CASES, FIXTURES / "positive", FIXTURES / "negative")


@pytest.mark.parametrize("case", [case for case in CASES if "positive" in case.parts],
                         ids=lambda path: path.name)
def test_a_state_saved_after_any_line_and_restored_gives_the_same_events(case: Path) -> None:
    lines = lines_of(case)
    whole = feed(lines)
    for cut in range(len(lines) + 1):
        first = Joiner()
        head = feed(lines[:cut], first)
        saved = json.loads(json.dumps(first.state()))
        tail = feed(lines[cut:], Joiner.restore(saved))
        assert head.events + tail.events == whole.events, cut
        assert head.skipped + tail.skipped == whole.skipped, cut


def test_reading_twice_gives_the_same_event_ids_and_every_id_is_unique() -> None:
    for case in CASES:
        first, second = feed(lines_of(case)), feed(lines_of(case))
        assert [event["event_id"] for event in first.events] == [event["event_id"] for event in second.events]
        ids = [event["event_id"] for event in first.events]
        assert len(ids) == len(set(ids)), case.name


# -- the line formats ----------------------------------------------------------------


def test_syslog_traditional_line() -> None:
    parsed = parse_syslog_line("Mar  1 09:15:04 mx1 postfix/smtp[2110]: 3A276164C7: removed\n", 2024, tz=UTC)
    assert parsed == LogLine(datetime(2024, 3, 1, 9, 15, 4, tzinfo=UTC), "mx1", "postfix/smtp", 2110,
                             "3A276164C7: removed")


def test_maillog_file_line_has_the_day_padded_with_a_zero() -> None:
    parsed = parse_syslog_line("Dec 01 04:57:37 rig postfix-mailhooks-rig/qmgr[15339]: CC00B20E45C: removed",
                               2024, tz=UTC)
    assert parsed is not None
    assert (parsed.timestamp, parsed.host, parsed.program, parsed.pid) == (
        datetime(2024, 12, 1, 4, 57, 37, tzinfo=UTC), "rig", "postfix-mailhooks-rig/qmgr", 15339)


@pytest.mark.parametrize(("stamp", "expected"), [
    ("2024-03-01T10:15:02.418263+01:00", datetime(2024, 3, 1, 9, 15, 2, 418263, tzinfo=UTC)),
    ("2024-03-01T10:15:02+0100", datetime(2024, 3, 1, 9, 15, 2, tzinfo=UTC)),
    ("2024-03-01T09:15:02Z", datetime(2024, 3, 1, 9, 15, 2, tzinfo=UTC)),
    ("2024-03-01T09:15:02.123456789Z", datetime(2024, 3, 1, 9, 15, 2, 123456, tzinfo=UTC)),
    ("2024-03-01T09:15:02.5-05:00", datetime(2024, 3, 1, 14, 15, 2, 500000, tzinfo=UTC)),
])
def test_rfc3339_lines(stamp: str, expected: datetime) -> None:
    parsed = parse_syslog_line(f"{stamp} mx2 postfix/submission/smtpd[4411]: connect from x[192.0.2.1]")
    assert parsed is not None
    assert parsed.timestamp == expected
    assert parsed.program == "postfix/submission/smtpd"


def test_a_time_without_offset_is_taken_in_the_zone_given() -> None:
    paris = ZoneInfo("Europe/Paris")
    winter = parse_syslog_line("Jan 15 10:00:00 mx postfix/smtp[1]: x", 2024, tz=paris)
    summer = parse_syslog_line("Jul 15 10:00:00 mx postfix/smtp[1]: x", 2024, tz=paris)
    iso = parse_syslog_line("2024-07-15T10:00:00 mx postfix/smtp[1]: x", tz=timezone(timedelta(hours=-3)))
    assert winter is not None and summer is not None and iso is not None
    assert winter.timestamp == datetime(2024, 1, 15, 9, 0, tzinfo=UTC)
    assert summer.timestamp == datetime(2024, 7, 15, 8, 0, tzinfo=UTC)
    assert iso.timestamp == datetime(2024, 7, 15, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "now", "year"), [
    ("Dec 31 23:59:59", datetime(2025, 1, 1, 0, 0, 30, tzinfo=UTC), 2024),   # last year's, read just after
    ("Jan  1 00:00:10", datetime(2024, 12, 31, 23, 59, 50, tzinfo=UTC), 2025),  # the reader's clock behind
    ("Jun 10 12:00:00", datetime(2024, 6, 10, 11, 0, tzinfo=UTC), 2024),
    ("Jun 12 12:00:00", datetime(2024, 6, 10, 11, 0, tzinfo=UTC), 2023),   # over a day ahead: last year
    ("Feb 29 12:00:00", datetime(2025, 3, 1, tzinfo=UTC), 2024),           # the last leap year
])
def test_the_year_of_a_line_without_one(text: str, now: datetime, year: int) -> None:
    parsed = parse_syslog_line(f"{text} mx postfix/qmgr[1]: x", now=now, tz=UTC)
    assert parsed is not None
    assert parsed.timestamp.year == year


@pytest.mark.parametrize("text", [
    "", "\n", "postfix/smtp[1]: ABCDEF1234: removed", "Mar  1 09:15:04 mx1", "Mar  1 09:15:04 mx1 nocolon",
    "Mar 32 09:15:04 mx1 postfix/smtp[1]: x", "Feb 29 09:15:04 mx1 postfix/smtp[1]: x",
    "Mar  1 25:15:04 mx1 postfix/smtp[1]: x", "2024-02-30T09:15:04Z mx1 postfix/smtp[1]: x",
    "0000-01-01T00:00:00Z mx1 postfix/smtp[1]: x", "Mar  1 09:15:04 mx1 postfix/smtp[x]: x",
    "Mar  1 09:15:04 mx1 " + "a" * 300 + ": x",
])
def test_lines_that_are_no_syslog_lines(text: str) -> None:
    assert parse_syslog_line(text, 2023) is None


def test_an_over_long_line_is_no_line() -> None:
    text = "Mar  1 09:15:04 mx1 postfix/smtp[1]: " + "x" * postfix.MAX_LINE_CHARS
    assert parse_syslog_line(text, 2024) is None


JOURNAL_ENTRY: dict[str, Any] = {
    "__REALTIME_TIMESTAMP": "1709285400812345",
    "SYSLOG_IDENTIFIER": "postfix/smtp",
    "SYSLOG_PID": "7003",
    "_PID": "7003",
    "_HOSTNAME": "mx3",
    "MESSAGE": "1C2D3E4F5A: removed",
}


def test_journal_entry() -> None:
    assert parse_journal_entry(JOURNAL_ENTRY) == LogLine(datetime(2024, 3, 1, 9, 30, 0, 812345, tzinfo=UTC),
                                                         "mx3", "postfix/smtp", 7003, "1C2D3E4F5A: removed")


def test_journal_message_as_bytes_and_pid_from_either_field() -> None:
    entry = {**JOURNAL_ENTRY, "MESSAGE": list("caf\xe9".encode("latin-1")), "SYSLOG_PID": None}
    parsed = parse_journal_entry(entry)
    assert parsed is not None
    assert parsed.message == "caf\ufffd"
    assert parsed.pid == 7003


@pytest.mark.parametrize("changes", [
    {"MESSAGE": None}, {"MESSAGE": 42}, {"MESSAGE": [256]}, {"MESSAGE": [True]}, {"SYSLOG_IDENTIFIER": None},
    {"SYSLOG_IDENTIFIER": ""}, {"__REALTIME_TIMESTAMP": None}, {"__REALTIME_TIMESTAMP": "soon"},
    {"__REALTIME_TIMESTAMP": True}, {"__REALTIME_TIMESTAMP": "9" * 30},
])
def test_journal_entries_that_are_no_lines(changes: dict[str, Any]) -> None:
    assert parse_journal_entry({**JOURNAL_ENTRY, **changes}) is None


def test_journal_entry_that_is_not_a_mapping() -> None:
    assert parse_journal_entry([1, 2]) is None  # type: ignore[arg-type]


# -- the joiner ----------------------------------------------------------------------


SENT = "to=<a@example.org>, relay=mx[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)"


def test_a_delivery_joins_the_message_id_and_sender_of_its_queue_id() -> None:
    joiner = Joiner()
    joiner.feed(line("ABCDE12345: message-id=<m1@example.com>", program="postfix/cleanup"))
    joiner.feed(line("ABCDE12345: from=<news@mail.example.com>, size=1, nrcpt=1 (queue active)",
                     program="postfix/qmgr"))
    [event] = joiner.feed(line(f"ABCDE12345: {SENT}")).events
    assert (event["message_id"], event["sending_domain"], event["sending_node"]) == (
        "m1@example.com", "mail.example.com", "mx1")


def test_the_same_queue_id_on_two_hosts_is_two_messages() -> None:
    joiner = Joiner()
    joiner.feed(line("ABCDE12345: message-id=<m1@example.com>", program="postfix/cleanup", host="mx1"))
    [event] = joiner.feed(line(f"ABCDE12345: {SENT}", host="mx2")).events
    assert event["message_id"] == "ABCDE12345@mx2"


def test_removed_forgets_the_queue_id() -> None:
    joiner = Joiner()
    joiner.feed(line("ABCDE12345: message-id=<m1@example.com>", program="postfix/cleanup"))
    assert len(joiner) == 1
    joiner.feed(line("ABCDE12345: removed", program="postfix/qmgr"))
    assert len(joiner) == 0
    [event] = joiner.feed(line(f"ABCDE12345: {SENT}")).events
    assert event["message_id"] == "ABCDE12345@mx1"


def test_at_most_max_messages_are_remembered_the_least_recently_named_forgotten() -> None:
    joiner = Joiner(max_messages=3)
    for number in range(5):
        joiner.feed(line(f"ABCDE1234{number}: message-id=<m{number}@example.com>", program="postfix/cleanup"))
    assert len(joiner) == 3
    assert [message["queue_id"] for message in joiner.state()["messages"]] == [
        "ABCDE12342", "ABCDE12343", "ABCDE12344"]
    [event] = joiner.feed(line(f"ABCDE12340: {SENT}")).events
    assert event["message_id"] == "ABCDE12340@mx1"


def test_what_no_line_named_for_max_age_is_forgotten_in_log_time() -> None:
    joiner = Joiner(max_age=timedelta(days=7))
    joiner.feed(line("ABCDE12340: message-id=<old@example.com>", program="postfix/cleanup"))
    joiner.feed(line("ABCDE12341: message-id=<new@example.com>", program="postfix/cleanup",
                     at=T0 + timedelta(days=6)))
    assert len(joiner) == 2
    joiner.feed(line("ABCDE12342: message-id=<newer@example.com>", program="postfix/cleanup",
                     at=T0 + timedelta(days=7, seconds=1)))
    assert [message["message_id"] for message in joiner.state()["messages"]] == [
        "new@example.com", "newer@example.com"]


def test_one_line_from_a_clock_far_ahead_does_not_make_the_later_messages_old() -> None:
    joiner = Joiner()
    joiner.feed(line("ABCDE12340: message-id=<m0@example.com>", program="postfix/cleanup",
                     at=T0 + timedelta(days=365)))
    joiner.feed(line("ABCDE12341: message-id=<m1@example.com>", program="postfix/cleanup"))
    [event] = joiner.feed(line(f"ABCDE12341: {SENT}", at=T0 + timedelta(seconds=1))).events
    assert event["message_id"] == "m1@example.com"


def test_a_message_remembers_a_bounded_number_of_deferred_recipients() -> None:
    joiner = Joiner()
    for number in range(postfix.MAX_PENDING_RECIPIENTS + 5):
        joiner.feed(line(f"ABCDE12345: to=<r{number}@example.org>, relay=none, delay=1, dsn=4.4.1, "
                         "status=deferred (connect to example.org[192.0.2.1]:25: Connection timed out)"))
    [message] = joiner.state()["messages"]
    assert len(message["pending"]) == postfix.MAX_PENDING_RECIPIENTS
    expired = joiner.feed(line("ABCDE12345: from=<a@example.com>, status=expired, returned to sender",
                               program="postfix/qmgr"))
    assert len(expired.events) == postfix.MAX_PENDING_RECIPIENTS
    assert {event["bounce_type"] for event in expired.events} == {"expired"}


def test_the_null_senders_notices_can_be_events_when_asked_for() -> None:
    lines = [line("ABCDE12345: from=<>, size=1, nrcpt=1 (queue active)", program="postfix/qmgr"),
             line(f"ABCDE12345: {SENT}")]
    assert not feed(list(lines)).events
    events = feed(list(lines), Joiner(skip_null_sender=False)).events
    assert [(event["event"], "sending_domain" in event) for event in events] == [("delivered", False)]


def test_ids_differ_by_host_recipient_status_and_time() -> None:
    base = feed([line(f"ABCDE12345: {SENT}")]).events[0]["event_id"]
    others = [
        feed([line(f"ABCDE12345: {SENT}", host="mx2")]),
        feed([line(f"ABCDE12345: {SENT.replace('a@', 'b@')}")]),
        feed([line(f"ABCDE12345: {SENT.replace('status=sent', 'status=deferred')}")]),
        feed([line(f"ABCDE12345: {SENT}", at=T0 + timedelta(seconds=1))]),
    ]
    ids = {parsed.events[0]["event_id"] for parsed in others}
    assert len(ids) == 4 and base not in ids


def test_a_long_queue_id() -> None:
    [event] = feed([line(f"4Pt2mN2VXxznjll: {SENT}")]).events
    assert event["metadata"]["queue_id"] == "4Pt2mN2VXxznjll"


def test_a_word_of_a_warning_is_no_queue_id() -> None:
    assert feed([line("warning: status=bounced of something")]) == Parsed()


@pytest.mark.parametrize("state", [
    None, [], {}, {"version": 2, "messages": []}, {"version": 1}, {"version": 1, "messages": {}},
    {"version": 1, "messages": [1]}, {"version": 1, "messages": [{"host": "h"}]},
    {"version": 1, "newest": "yesterday", "messages": []},
    {"version": 1, "newest": "2024-03-01T09:00:00", "messages": []},
    {"version": 1, "messages": [{"host": "h", "queue_id": "Q", "seen": 5, "pending": {}}]},
    {"version": 1, "messages": [{"host": "h", "queue_id": "Q", "seen": "2024-03-01T09:00:00Z",
                                 "message_id": 5, "pending": {}}]},
    {"version": 1, "messages": [{"host": "h", "queue_id": "Q", "seen": "2024-03-01T09:00:00Z",
                                 "pending": []}]},
    {"version": 1, "messages": [{"host": "h", "queue_id": "Q", "seen": "2024-03-01T09:00:00Z",
                                 "pending": {"a@b": {"dsn": 4}}}]},
])
def test_restoring_what_is_no_state_says_what_is_wrong(state: Any) -> None:
    with pytest.raises(ValueError, match="state"):
        Joiner.restore(state)


def test_restore_keeps_the_bounds_of_the_joiner_it_makes() -> None:
    joiner = Joiner()
    for number in range(5):
        joiner.feed(line(f"ABCDE1234{number}: message-id=<m{number}@example.com>", program="postfix/cleanup"))
    assert len(Joiner.restore(joiner.state(), max_messages=2)) == 2


# -- hostile input -------------------------------------------------------------------


FRAGMENTS = st.sampled_from([
    "ABCDE12345: ", "NOQUEUE: ", "4Pt2mN2VXxznjll: ", "to=<", "a@example.org", ">, ", "orig_to=<", "relay=",
    "dsn=", "5.1.1", "2.0.0", "4.4.1", "status=", "sent", "bounced", "deferred", "expired", "force-expired",
    "SOFTBOUNCE", " (", ")", "said: ", "550", "550-5.1.1 ", "from=<", ">, size=1, nrcpt=1", ", returned",
    "message-id=<", "removed", "reject: ", "milter-reject: ", "RCPT from x[192.0.2.1]: ", "; from=<", " to=<",
    " helo=<", ">: ", "<>", "@", "\x00", "\ud800", "\u2028", "é", ", ", " ", "=",
])


@PROPERTY_SETTINGS
@given(messages=st.lists(st.lists(FRAGMENTS | st.text(max_size=8), max_size=20).map("".join), max_size=20),
       programs=st.lists(st.sampled_from(["postfix/smtp", "postfix/qmgr", "postfix/cleanup", "postfix/smtpd",
                                          "smtp", "x/y/z", ""]), min_size=1))
def test_no_sequence_of_lines_breaks_the_joiner(messages: list[str], programs: list[str]) -> None:
    joiner = Joiner(max_messages=4)
    result = Parsed()
    for number, message in enumerate(messages):
        program = programs[number % len(programs)]
        result.extend(joiner.feed(line(message, program=program, at=T0 + timedelta(seconds=number))))
    assert_well_formed(result)
    restored = Joiner.restore(json.loads(json.dumps(joiner.state())))
    assert restored.state() == joiner.state()


@PROPERTY_SETTINGS
@given(text=st.text(max_size=300) | st.lists(FRAGMENTS, max_size=30).map(
    lambda parts: "Mar  1 09:15:04 mx1 postfix/smtp[1]: " + "".join(parts)))
def test_no_text_breaks_the_line_parser(text: str) -> None:
    parsed = parse_syslog_line(text, now=NOW)
    if parsed is not None:
        assert_well_formed(Joiner().feed(parsed))


@PROPERTY_SETTINGS
@given(entry=st.dictionaries(
    st.sampled_from(["MESSAGE", "SYSLOG_IDENTIFIER", "SYSLOG_PID", "_PID", "__REALTIME_TIMESTAMP",
                     "_HOSTNAME"]),
    st.none() | st.booleans() | st.integers() | st.text(max_size=40)
    | st.lists(st.integers(-5, 300), max_size=20)))
def test_no_journal_entry_breaks_its_parser(entry: dict[str, Any]) -> None:
    parsed = parse_journal_entry(entry)
    if parsed is not None:
        assert_well_formed(Joiner().feed(parsed))


@pytest.mark.parametrize("message", [
    "ABCDE12345: to=<" + "a" * 60_000 + ">, relay=none, dsn=5.0.0, status=bounced (x)",
    "ABCDE12345: to=<a@b>, " + "relay=x, " * 7_000 + "status=sent (ok)",
    "ABCDE12345: to=<a@b>, relay=none, dsn=5.0.0, status=bounced (" + "said: 550 " * 6_000 + ")",
    "NOQUEUE: reject: RCPT from " + " from x[" * 8_000 + ": 550 x; from=<a> to=<b@c>",
    "ABCDE12345: message-id=" + "<" * 60_000,
    "ABCDE12345: from=<" + ">" * 60_000,
])
def test_long_hostile_lines_are_read_in_linear_time(message: str) -> None:
    started = time.monotonic()
    parsed = Joiner().feed(line(message))
    assert time.monotonic() - started < 1
    assert_well_formed(parsed)


def test_parse_lines_reads_a_file_with_a_new_joiner_or_a_given_one() -> None:
    lines = (FIXTURES / "positive" / "syslog-traditional.log").read_text("utf-8").splitlines()
    joiner = Joiner()
    assert parse_lines(lines, now=NOW, tz=UTC) == parse_lines(lines, joiner, now=NOW, tz=UTC)
    assert len(joiner) == 0  # every message of the file was removed
