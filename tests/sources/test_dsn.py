"""Bounces (RFC 3464) and complaints (RFC 5965) by mail → events: one case per fixture
message, the choices of fields, and hostile input.

A fixture is `fixtures/dsn/{positive,negative}/NAME.eml` beside `NAME.expected.json`:
`{"events": [...], "skipped": [kinds]}`; a positive case gives events, a negative one none.
A new case is a new pair of files; `MAILHOOKS_UPDATE_FIXTURES=1` writes the expectations
of the cases that have none, to be read before they are committed. Where each message
comes from is in fixtures/dsn/README.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailhooks.sources import dsn
from mailhooks.sources.dsn import parse_message
from mailhooks.sources.records import Parsed
from tests.sources.expectations import (
    assert_as_expected,
    assert_every_case_has_its_expectation,
)
from tests.sources.expectations import assert_well_formed as assert_shape

FIXTURES = Path(__file__).parent / "fixtures" / "dsn"
CASES = sorted(path for kind in ("positive", "negative") for path in (FIXTURES / kind).glob("*.eml"))
EDITS = [b"", b"\x00", b"\xff", b"\r", b"\n\n", b"--", b";", b"<", b">", b"=?utf-8?b?", b":", b"\xed\xb2\x80"]
PROPERTY_SETTINGS = settings(database=None, deadline=None, max_examples=200,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def fixture(name: str) -> bytes:
    return next(path for path in CASES if path.name == name).read_bytes()


def assert_well_formed(parsed: Parsed) -> None:
    assert_shape(parsed, dsn.SKIP_KINDS)


def only_event(raw: bytes) -> dict[str, Any]:
    parsed = parse_message(raw)
    assert_well_formed(parsed)
    assert len(parsed.events) == 1, parsed
    return parsed.events[0]


def kinds(raw: bytes) -> list[str]:
    parsed = parse_message(raw)
    assert_well_formed(parsed)
    return [skipped.kind for skipped in parsed.skipped]


# -- the fixtures --------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_fixture(case: Path) -> None:
    parsed = parse_message(case.read_bytes())
    assert_as_expected(case, parsed)
    assert_well_formed(parsed)
    if case.parent.name == "positive":
        assert parsed.events
    else:
        assert not parsed.events and parsed.skipped


def test_every_fixture_has_its_expectation_and_no_expectation_is_orphaned() -> None:
    assert_every_case_has_its_expectation(CASES, FIXTURES / "positive", FIXTURES / "negative")


def test_parsing_twice_gives_the_same_event_ids_and_ids_are_unique() -> None:
    seen: set[str] = set()
    for case in CASES:
        first, second = parse_message(case.read_bytes()), parse_message(case.read_bytes())
        ids = [event["event_id"] for event in first.events]
        assert ids == [event["event_id"] for event in second.events]
        assert not seen & set(ids), case.name
        seen.update(ids)


def test_crlf_and_lf_give_the_same_events() -> None:
    crlf = fixture("exchange-online-crlf.eml")
    assert b"\r\n" in crlf
    assert parse_message(crlf) == parse_message(crlf.replace(b"\r\n", b"\n"))


# -- the choices ---------------------------------------------------------------------


def test_a_real_postfix_bounce() -> None:
    event = only_event(fixture("postfix-3.7-user-unknown.eml"))
    assert (event["event"], event["email"]) == ("bounced", "missing@example.com")
    assert event["bounce_type"] == "hard"
    assert (event["dsn_status"], event["smtp_code"]) == ("5.1.1", 550)
    assert event["message_id"] == "missing.rig@example.net"
    assert event["sending_domain"] == "example.net"
    assert "sending_node" not in event and "dedicated_ip" not in event
    assert event["metadata"]["reporting_mta"] == "rig.mailhooks.test"


def test_a_failure_on_a_temporary_status_is_an_expiry() -> None:
    event = only_event(fixture("rfc3464-a1-simple.eml"))
    assert (event["bounce_type"], event["dsn_status"], event["smtp_code"]) == ("expired", "4.0.0", 426)
    assert event["timestamp"] == "1994-07-07T21:15:49Z"  # Last-Attempt-Date


def test_an_unspecific_status_gives_way_to_the_diagnostics_enhanced_code() -> None:
    event = only_event(fixture("status-0-0-refined.eml"))
    assert (event["dsn_status"], event["smtp_code"]) == ("5.4.1", 550)
    assert event["email"] == "alice@contoso.example"
    multi = parse_message(fixture("rfc3464-a2-multi.eml")).events
    assert [event["dsn_status"] for event in multi] == ["5.0.0", "4.0.0", "5.0.0"]  # nothing more specific


def test_the_message_id_falls_back_to_a_stable_synthetic_one() -> None:
    events = parse_message(fixture("rfc3464-a2-multi.eml")).events
    assert [event["event"] for event in events] == ["bounced", "delayed", "bounced"]
    assert len({event["message_id"] for event in events}) == 1
    assert events[0]["message_id"].endswith("@mailhooks.invalid")


def test_an_address_that_is_no_utf8_gives_way_to_the_original_recipient() -> None:
    event = only_event(fixture("invalid-charset-8bit.eml"))
    assert event["email"] == "francois@latin.example"
    assert "\ufffd" in event["diagnostic"]


def test_complaint_fields() -> None:
    event = only_event(fixture("rfc5965-b2-full.eml"))
    assert (event["event"], event["complaint_type"]) == ("complaint", "abuse")
    assert event["email"] == "user@example.com"
    assert event["message_id"] == "8787KJKJ3K4J3K4J3K4J3.mail@example.net"
    assert event["dedicated_ip"] == "192.0.2.1"
    assert event["sending_domain"] == "example.net"
    assert event["metadata"]["arrival_date"] == "2005-03-08T18:00:00Z"


def test_microsoft_jmrp_names_the_recipient_only_in_its_own_header() -> None:
    event = only_event(fixture("microsoft-jmrp.eml"))
    assert event["email"] == "reader@hotmail.com"
    assert event["message_id"] == "20240303.newsletter.45@mail.example.com"
    original = only_event(fixture("microsoft-jmrp-original-format.eml"))
    assert (original["event"], original["email"], original["complaint_type"]) == (
        "complaint", "reader2@outlook.com", "abuse")


def test_a_redacted_recipient_is_none() -> None:
    assert kinds(fixture("aol-redacted.eml")) == ["complaint:no-recipient"]


# -- hostile input -------------------------------------------------------------------


def test_a_message_over_the_size_limit_is_refused_unread() -> None:
    started = time.monotonic()
    raw = b"X-Big: " + b"a" * dsn.MAX_MESSAGE_BYTES + b"\n\nbody"
    assert kinds(raw) == ["too-large"]
    assert time.monotonic() - started < 1


def test_ten_megabytes_of_headers_under_the_limit_are_read_quickly() -> None:
    started = time.monotonic()
    raw = b"".join(b"X-Header-%d: %s\n" % (number, b"v" * 40) for number in range(150_000))
    assert len(raw) < dsn.MAX_MESSAGE_BYTES
    assert kinds(raw + b"\nbody") == ["not-a-report"]
    assert time.monotonic() - started < 10


def test_too_many_parts_are_refused_before_parsing() -> None:
    parts = b"--b\nContent-Type: text/plain\n\nx\n" * (dsn.MAX_BOUNDARY_LINES + 1)
    raw = b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n" + parts + b"--b--\n"
    assert kinds(raw) == ["too-many-parts"]


def test_too_many_recipients_are_refused_before_parsing() -> None:
    blocks = b"Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\n\n" * (
        dsn.MAX_RECIPIENT_FIELDS + 1)
    raw = (b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\n"
           b"Content-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\n" + blocks + b"--b--\n")
    assert kinds(raw) == ["too-many-recipients"]


def test_many_recipients_under_the_limit() -> None:
    blocks = b"".join(b"Final-Recipient: rfc822; r%d@example.org\nAction: failed\nStatus: 5.1.1\n\n" % number
                      for number in range(dsn.MAX_RECIPIENT_FIELDS))
    raw = (b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\n"
           b"Content-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\n" + blocks + b"--b--\n")
    parsed = parse_message(raw)
    assert len(parsed.events) == dsn.MAX_RECIPIENT_FIELDS
    assert_well_formed(parsed)


def test_deep_nesting_is_malformed_not_a_crash() -> None:
    raw = b"Content-Type: message/rfc822\n\n" * 5_000 + b"Subject: deep\n\nbody"
    assert kinds(raw) in (["malformed"], ["not-a-report"])


@pytest.mark.parametrize("raw", ["text", None, 42, ["bytes"]])
def test_what_is_no_bytes_is_skipped(raw: Any) -> None:
    assert [skipped.kind for skipped in parse_message(raw).skipped] == ["malformed"]


def test_bytearray_and_memoryview_are_bytes() -> None:
    raw = fixture("postfix-3.7-user-unknown.eml")
    assert parse_message(bytearray(raw)) == parse_message(memoryview(raw)) == parse_message(raw)


def test_huge_fields_are_cut_to_the_events_bounds() -> None:
    raw = fixture("postfix-3.7-user-unknown.eml").replace(
        b"Diagnostic-Code: smtp; 550 5.1.1", b"Diagnostic-Code: smtp; 550 5.1.1 " + b"x" * 50_000, 1).replace(
        b"Message-ID: <missing.rig@example.net>", b"Message-ID: <" + b"m" * 5_000 + b"@example.net>", 1)
    event = only_event(raw)
    assert len(event["diagnostic"]) == dsn.MAX_DIAGNOSTIC_CHARS
    assert len(event["message_id"]) <= 998


@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=2_000))
def test_no_bytes_break_the_parser(raw: bytes) -> None:
    assert_well_formed(parse_message(raw))


@PROPERTY_SETTINGS
@given(case=st.sampled_from(CASES), data=st.data())
def test_no_truncation_or_corruption_of_a_fixture_breaks_the_parser(case: Path, data: st.DataObject) -> None:
    raw = bytearray(case.read_bytes())
    cut = data.draw(st.integers(0, len(raw)), label="cut")
    mutated = raw[:cut]
    for _ in range(data.draw(st.integers(0, 8), label="edits")):
        if not mutated:
            break
        at = data.draw(st.integers(0, len(mutated) - 1), label="at")
        mutated[at:at + 1] = data.draw(st.sampled_from(EDITS), label="replacement")
    assert_well_formed(parse_message(bytes(mutated)))


@PROPERTY_SETTINGS
@given(fields=st.dictionaries(
    st.sampled_from(["Final-Recipient", "Original-Recipient", "Action", "Status", "Diagnostic-Code",
                     "Last-Attempt-Date", "Remote-MTA"]),
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=60)))
def test_no_recipient_block_breaks_the_parser(fields: dict[str, str]) -> None:
    block = "".join(f"{name}: {value}\n" for name, value in fields.items()).encode("utf-8")
    raw = (b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\n"
           b"Content-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\n" + block + b"\n--b--\n")
    assert_well_formed(parse_message(raw))
