"""PowerMTA accounting CSV → events: one case per fixture file, determinism, hostile input.

A fixture is a stretch of an acct-file stream, `NAME.csv`, fed line by line as
`mailhooks ingest pmta` reads stdin, beside `NAME.expected.json`:
`{"events": [...], "skipped": [kinds]}`. A new case is a new pair of files.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailhooks.sources import pmta
from mailhooks.sources.records import Parsed
from tests.sources.expectations import (
    assert_as_expected,
    assert_every_case_has_its_expectation,
    assert_well_formed,
    cases_in,
)

FIXTURES = Path(__file__).parent / "fixtures" / "pmta"
CASES = cases_in(FIXTURES)
PROPERTY_SETTINGS = settings(
    database=None, deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow]
)
HEADER = "type,timeLogged,orig,rcpt,dsnStatus,dsnDiag,bounceCat,dlvSourceIp,vmta,jobId,header_Message-Id\r\n"


def physical_lines(text: str) -> list[str]:
    """The lines as a caller reading stdin gets them, each with its own line end."""
    return list(io.StringIO(text, newline=""))


def feed(lines: Iterable[str], reader: pmta.AccountingReader | None = None) -> Parsed:
    reader = reader or pmta.AccountingReader()
    parsed = Parsed()
    for line in lines:
        parsed.extend(reader.feed_line(line))
    parsed.extend(reader.finish())
    return parsed


def parse_case(case: Path) -> Parsed:
    return feed(physical_lines(case.read_bytes().decode("utf-8")))


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.name)
def test_fixture(case: Path) -> None:
    parsed = parse_case(case)
    assert_as_expected(case, parsed)
    assert_well_formed(parsed)


def test_every_fixture_has_its_expectation_and_no_expectation_is_orphaned() -> None:
    assert_every_case_has_its_expectation(CASES, FIXTURES)


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.name)
def test_line_ends_do_not_matter(case: Path) -> None:
    """LF, CRLF (RFC 4180's, PowerMTA's own) or lines the caller already stripped: the same."""
    text = case.read_bytes().decode("utf-8")
    as_lf = text.replace("\r\n", "\n")
    expected = feed(physical_lines(as_lf))
    assert feed(physical_lines(as_lf.replace("\n", "\r\n"))) == expected
    assert feed(line.rstrip("\r\n") for line in physical_lines(as_lf)) == expected


def test_parsing_twice_gives_the_same_event_ids() -> None:
    for case in CASES:
        first, second = parse_case(case), parse_case(case)
        assert [event["event_id"] for event in first.events] == [event["event_id"] for event in second.events]


def test_no_two_fixture_records_share_an_event_id() -> None:
    ids = [event["event_id"] for case in CASES for event in parse_case(case).events]
    assert len(ids) == len(set(ids)) > 20


def test_a_record_after_a_repeated_header_keeps_its_id() -> None:
    """PowerMTA writes the header again when it restarts the pipe: the records it then writes
    again (none are lost, some may be repeated) must not be delivered twice."""
    record = "d,2024-06-03 18:00:00+0200,b@mail.example.com,a@example.org,2.0.0,smtp;250 ok,,192.0.2.1,,,\r\n"
    first = feed([HEADER, record])
    again = feed([HEADER, record, HEADER, record])
    assert len(again.events) == 2 and not again.skipped
    assert {event["event_id"] for event in again.events} == {first.events[0]["event_id"]}


def test_the_same_recipient_gets_a_new_id_for_each_attempt() -> None:
    lines = [HEADER] + [
        f"t,2024-06-03 18:0{minute}:00+0200,b@mail.example.com,a@example.org,4.7.0,smtp;421 later,,,v,j,\r\n"
        for minute in range(5)
    ]
    ids = [event["event_id"] for event in feed(lines).events]
    assert len(ids) == len(set(ids)) == 5


def test_a_message_without_a_logged_message_id_gets_one_stand_in_across_its_records() -> None:
    header = "type,timeLogged,timeQueued,orig,rcpt,jobId,dsnStatus\n"
    queued = "2024-06-03 18:00:00+0200"
    lines = [header,
             f"t,2024-06-03 18:01:00+0200,{queued},b@mail.example.com,a@example.org,j1,4.2.2\n",
             f"b,2024-06-03 19:01:00+0200,{queued},b@mail.example.com,a@example.org,j1,5.2.2\n",
             f"d,2024-06-03 18:01:00+0200,{queued},b@mail.example.com,z@example.org,j1,2.0.0\n"]
    delayed, bounced, other = feed(lines).events
    assert delayed["message_id"] == bounced["message_id"] != other["message_id"]
    assert re.fullmatch(r"<[0-9a-f]{32}@pmta\.mailhooks\.invalid>", delayed["message_id"])


@pytest.mark.parametrize(
    ("category", "status", "bounce_type"),
    [
        ("bad-mailbox", "5.1.1", "hard"),
        ("bad-domain", "5.1.2", "hard"),
        ("inactive-mailbox", "5.2.1", "hard"),
        ("message-expired", "4.4.7", "expired"),
        ("spam-related", "5.7.1", "soft"),
        ("policy-related", "5.7.1", "soft"),
        ("quota-issues", "5.2.2", "soft"),
        ("other", "5.0.0", "hard"),
        ("other", "4.0.0", "soft"),
        ("", "4.4.1", "soft"),
        ("", "", "hard"),
        ("a-category-of-the-future", "5.0.0", "hard"),
    ],
)
def test_bounce_type_table(category: str, status: str, bounce_type: str) -> None:
    record = f"b,1717430400,b@mail.example.com,a@example.org,{status},,{category},,,,\n"
    [event] = feed([HEADER, record]).events
    assert event["bounce_type"] == bounce_type


def test_a_quoted_field_left_open_is_given_up_after_a_bound_and_the_stream_recovers() -> None:
    reader = pmta.AccountingReader()
    opening = 'd,1717430400,b@mail.example.com,a@example.org,"open\n'
    results = [reader.feed_line(HEADER), reader.feed_line(opening)]
    results += [reader.feed_line("more of the field\n") for _ in range(pmta.MAX_RECORD_LINES)]
    results.append(reader.feed_line("d,1717430401,b@mail.example.com,ok@example.org,2.0.0,,,,,,\n"))
    results.append(reader.finish())
    parsed = Parsed()
    for result in results:
        parsed.extend(result)
    assert [skipped.kind for skipped in parsed.skipped] == ["malformed"]
    assert [event["email"] for event in parsed.events] == ["ok@example.org"]


def test_huge_and_hostile_lines_are_skipped_or_bounded() -> None:
    long = "x" * 100_000  # under the csv module's field limit (128 KiB): read, then bounded
    huge = "x" * 1_000_000  # over it: the line is skipped
    lines = [
        HEADER,
        f"d,1717430400,b@mail.example.com,a@example.org,2.0.0,smtp;250 {long},,,{long},{long},{long}\n",
        f"d,1717430400,b@mail.example.com,b@example.org,2.0.0,smtp;250 {huge},,,,,\n",
        f"d,{long},{long},{long}@example.org,,,,,,,\n",
        "d,1717430401,b@mail.example.com,\x00@example.org,,,,,,,\n",
        "d,1717430402,b@mail.example.com,c@example.org,\x00,\x1b[2J,\x7f,\x00,\x00,\x00,\x00\n",
        "d,1717430403,b\udcff@mail.example.com,d@example.org,,,,,,,<\udcfe@x>\n",  # surrogateescape
        "\x00" * 5000 + "\n",
        '"' * 1001 + "\n",  # opens a quoted field that never closes: the input is cut
    ]
    parsed = feed(lines)
    assert_well_formed(parsed)
    first = parsed.events[0]
    assert len(first["diagnostic"]) == 2000
    assert "bridge" not in first and "campaign_id" not in first  # a cut id would name another
    assert first["message_id"].endswith("@pmta.mailhooks.invalid>")
    assert [event["email"] for event in parsed.events] == ["a@example.org", "c@example.org", "d@example.org"]
    assert [skipped.kind for skipped in parsed.skipped] == [
        "malformed", "no-recipient", "no-recipient", "malformed", "truncated",
    ]


def test_a_line_holding_a_line_break_does_not_confuse_the_reader() -> None:
    parsed = feed([HEADER, "d,1,b@x.example,a@x.example,,,,,,,\nd,2,b@x.example,c@x.example,,,,,,,\n"])
    assert not parsed.events and [skipped.kind for skipped in parsed.skipped] == ["malformed"]


# Hypothesis: nothing on stdin makes the reader raise or produce an invalid event.

FIELD_TEXT = st.text(max_size=40) | st.sampled_from([
    '"', '""', ",", "\r\n", "\n", "\r", "a@b.example", "<c@d.example>", "5.1.1 (bad)", "smtp;550 5.1.1 no",
    "2024-06-03 18:00:00+0200", "1717430400", "192.0.2.1", "::ffff:192.0.2.1", "bad-mailbox", "\x00",
])
RECORD_TYPES = st.sampled_from(["d", "b", "t", "tq", "r", "f", "rb", "rs", "x", "type", "#type", ""])


@PROPERTY_SETTINGS
@given(st.lists(st.text(alphabet=st.sampled_from('ab@.,"\r\n\x00 5;:\ufeff'), max_size=60), max_size=30))
def test_any_lines_are_read_without_raising(lines: list[str]) -> None:
    assert_well_formed(feed([HEADER, *lines]))


@PROPERTY_SETTINGS
@given(st.lists(st.text(), max_size=10))
def test_any_text_is_read_without_raising(lines: list[str]) -> None:
    assert_well_formed(feed(lines))


@PROPERTY_SETTINGS
@given(st.lists(st.tuples(RECORD_TYPES, st.lists(FIELD_TEXT, min_size=10, max_size=10)), max_size=8))
def test_every_record_written_as_csv_gives_one_event_or_one_skip(rows: list[tuple[str, list[str]]]) -> None:
    """Quoted fields with commas, quotes and line breaks: each record PowerMTA writes is
    accounted for exactly once, whatever its fields hold."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    records = [[record_type, *fields] for record_type, fields in rows if record_type not in ("type", "#type")]
    writer.writerows(records)
    parsed = feed(physical_lines(HEADER + buffer.getvalue()))
    assert_well_formed(parsed)
    assert len(parsed.events) + len(parsed.skipped) == len(records)
