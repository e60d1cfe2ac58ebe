"""KumoMTA log records → events: one case per fixture file, determinism, hostile input.

A fixture is a body as KumoMTA's log hook POSTs it, `NAME.json` (or `NAME.txt` when it is no
JSON at all), beside `NAME.expected.json`: `{"events": [...], "skipped": [kinds]}`, or
`{"error": "start of the ValueError's message"}`. A new case is a new pair of files.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailhooks.events import Event
from mailhooks.sources import fields, kumomta
from tests.sources.expectations import (
    ONE_LINE,
    assert_as_expected,
    assert_every_case_has_its_expectation,
    assert_well_formed,
    cases_in,
    read_expected,
)

FIXTURES = Path(__file__).parent / "fixtures" / "kumomta"
CASES = cases_in(FIXTURES)
PROPERTY_SETTINGS = settings(
    database=None, deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow]
)


ENHANCED_200 = {"class": 2, "subject": 0, "detail": 0}


def base_record(**changes: Any) -> dict[str, Any]:
    """A Delivery record as docs/reference/log_record.md shows one."""
    record: dict[str, Any] = json.loads((FIXTURES / "delivery.json").read_text("utf-8"))
    record.update(changes)
    return record


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.name)
def test_fixture(case: Path) -> None:
    expected = read_expected(case)
    if "error" in expected:
        with pytest.raises(ValueError) as raised:
            kumomta.parse_body(case.read_bytes())
        assert str(raised.value).startswith(expected["error"])
        assert ONE_LINE.fullmatch(str(raised.value))
        return
    parsed = kumomta.parse_body(case.read_bytes())
    assert_as_expected(case, parsed)
    assert_well_formed(parsed)


def test_every_fixture_has_its_expectation_and_no_expectation_is_orphaned() -> None:
    assert_every_case_has_its_expectation(CASES, FIXTURES)


def test_parsing_twice_gives_the_same_event_ids() -> None:
    for case in CASES:
        try:
            first, second = kumomta.parse_body(case.read_bytes()), kumomta.parse_body(case.read_bytes())
        except ValueError:
            continue
        assert [event["event_id"] for event in first.events] == [event["event_id"] for event in second.events]


def test_no_two_fixture_records_share_an_event_id() -> None:
    ids: list[str] = []
    for case in CASES:
        try:
            ids.extend(event["event_id"] for event in kumomta.parse_body(case.read_bytes()).events)
        except ValueError:
            continue
    assert len(ids) == len(set(ids)) > 20


def test_a_record_has_the_same_id_alone_or_in_a_batch() -> None:
    record = base_record()
    alone = kumomta.parse_records(record).events
    batched = kumomta.parse_records([base_record(id="another"), record]).events
    assert alone[0]["event_id"] == batched[1]["event_id"] != batched[0]["event_id"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("type", "TransientFailure"),
        ("id", "2d98076abbbc11ed940250ebf67f93bd"),
        ("recipient", "bob@example.org"),
        ("timestamp", 1717430401),
        ("num_attempts", 1),
        ("response", {"code": 251, "enhanced_code": ENHANCED_200, "content": "OK"}),
        ("response", {"code": 250, "enhanced_code": {**ENHANCED_200, "detail": 5}, "content": "OK"}),
        ("response", {"code": 250, "enhanced_code": ENHANCED_200, "content": "Ok"}),
        ("session_id", "00000000-0000-0000-0000-000000000000"),
    ],
)
def test_records_differing_in_an_identifying_field_get_different_ids(field: str, value: Any) -> None:
    original = kumomta.parse_records(base_record()).events[0]["event_id"]
    changed = kumomta.parse_records(base_record(**{field: value})).events[0]["event_id"]
    assert changed != original


def test_fields_that_do_not_identify_a_record_leave_its_id_alone() -> None:
    """The hook's `headers` and `meta` lists may change between deployments; the same record
    logged again must still be recognised as already spooled."""
    original = kumomta.parse_records(base_record()).events[0]["event_id"]
    again = kumomta.parse_records(base_record(headers={}, meta={"x": 1})).events[0]["event_id"]
    assert again == original


def test_metadata_is_what_a_receiver_uses_not_the_transport() -> None:
    record = base_record(provider_name="Google", bounce_classification="SpamBlock", type="Bounce")
    [event] = kumomta.parse_records(record).events
    assert event["metadata"] == {
        "type": "Bounce", "id": "1d98076abbbc11ed940250ebf67f93bd", "queue": "spring-sale:acme@example.org",
        "num_attempts": 0, "egress_pool": "pool0", "egress_source": "source2",
        "bounce_classification": "SpamBlock", "meta.campaign": "spring-sale", "meta.tenant": "acme",
        "meta.customer_id": 4242, "headers.Subject": "Spring sale",
    }


def test_the_transport_fields_leave_the_id_alone() -> None:
    original = kumomta.parse_records(base_record()).events[0]["event_id"]
    again = kumomta.parse_records(base_record(
        site="elsewhere", size=1, peer_address={"name": "mx2.example.net.", "addr": "192.0.2.99"},
        tls_cipher="none", delivery_protocol="LMTP",
        response={**base_record()["response"], "command": "DATA"},
    )).events[0]["event_id"]
    assert again == original


@pytest.mark.parametrize(
    ("classification", "response_class", "bounce_type"),
    [
        ("InvalidRecipient", 5, "hard"),
        ("BadDomain", 5, "hard"),
        ("InactiveMailbox", 5, "hard"),
        ("MessageExpired", 4, "expired"),
        ("SpamBlock", 5, "soft"),
        ("PolicyRelated", 5, "soft"),
        ("QuotaIssues", 5, "soft"),
        ("Uncategorized", 5, "hard"),
        ("Uncategorized", 4, "soft"),
        ("SomeUserDefinedClass", 4, "soft"),
        (None, 5, "hard"),
    ],
)
def test_bounce_type_table(classification: str | None, response_class: int, bounce_type: str) -> None:
    response = {"code": response_class * 100 + 50,
                "enhanced_code": {"class": response_class, "subject": 0, "detail": 0}, "content": "x"}
    record = base_record(type="Bounce", bounce_classification=classification, response=response)
    [event] = kumomta.parse_records(record).events
    assert event["bounce_type"] == bounce_type
    assert event["metadata"].get("bounce_classification") == classification


def test_huge_strings_are_cut_or_dropped_never_passed_on() -> None:
    huge = "x" * 1_000_000
    record = base_record(
        response={"code": 550, "enhanced_code": {"class": 5, "subject": 1, "detail": 1}, "content": huge},
        queue=f"{huge}:{huge}@example.org", nodeid=huge, egress_pool=huge,
        headers={"Message-ID": huge, huge: "value"}, meta={f"k{index}": index for index in range(500)},
        source_address={"address": huge},
    )
    [event] = kumomta.parse_records(record).events
    Event.model_validate(event)
    assert len(event["diagnostic"]) == 2000
    assert event["message_id"] == record["id"]  # a cut Message-ID would name another message
    for field in ("campaign_id", "bridge", "sending_node", "dedicated_ip"):
        assert field not in event
    assert len(event["metadata"]) == 50
    assert len(event["metadata"]["egress_pool"]) == 1000


def test_a_huge_recipient_or_id_skips_the_record() -> None:
    parsed = kumomta.parse_records([
        base_record(recipient="a" * 1_000_000 + "@example.org"),
        base_record(id="i" * 1_000_000, headers={}),
    ])
    assert not parsed.events
    assert [skipped.kind for skipped in parsed.skipped] == ["no-recipient", "malformed"]
    assert_well_formed(parsed)


def test_deeply_nested_json_is_refused_as_a_body_and_skipped_as_a_value() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        kumomta.parse_body(b"[" * 100_000 + b"]" * 100_000)
    nested: Any = base_record()
    for _ in range(100_000):
        nested = [nested]
    parsed = kumomta.parse_records([nested])
    assert not parsed.events and [skipped.kind for skipped in parsed.skipped] == ["malformed"]
    deep_field: Any = {}
    for _ in range(100_000):
        deep_field = {"enhanced_code": deep_field, "content": deep_field}
    parsed = kumomta.parse_records(base_record(response=deep_field, meta=deep_field, headers=deep_field))
    assert len(parsed.events) == 1
    assert_well_formed(parsed)


def test_an_array_of_records_keeps_their_order_and_reports_each_failure() -> None:
    parsed = kumomta.parse_records([
        base_record(recipient="one@example.org"), "garbage", base_record(type="Delay"),
        base_record(recipient="two@example.org"),
    ])
    assert [event["email"] for event in parsed.events] == ["one@example.org", "two@example.org"]
    assert [skipped.kind for skipped in parsed.skipped] == ["malformed", "type:Delay"]


def test_the_input_is_not_modified() -> None:
    records = [base_record(recipient=["a@example.org", "b@example.org"]), base_record(type="Feedback")]
    before = copy.deepcopy(records)
    kumomta.parse_records(records)
    assert records == before


# Hypothesis: nothing a client can POST makes the parser raise or produce an invalid event.

JSON_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text()
    | st.sampled_from(["a@b.example", "<c@d.example>", "x:y@z.example", "10.0.0.1:25", "[2001:db8::1]:25",
                       "Delivery", "Bounce", "\x00", "\r\n", "\ud800"])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
RESPONSES = st.fixed_dictionaries({}, optional={
    "code": st.integers(-1000, 1000) | JSON_VALUES,
    "enhanced_code": st.fixed_dictionaries({}, optional={
        name: st.integers(-5, 1200) | JSON_VALUES for name in ("class", "subject", "detail")
    }) | JSON_VALUES,
    "content": st.text() | JSON_VALUES,
    "command": JSON_VALUES,
})
RECORD_FIELDS = (
    "id", "sender", "recipient", "queue", "site", "size", "peer_address", "timestamp", "created",
    "num_attempts", "bounce_classification", "egress_pool", "egress_source", "source_address",
    "feedback_report", "meta", "headers", "delivery_protocol", "reception_protocol", "nodeid",
    "tls_cipher", "tls_protocol_version", "provider_name", "session_id",
)
RECORDS = st.fixed_dictionaries(
    {"type": st.sampled_from([*kumomta.EVENT_OF_TYPE, "Delay", "AdminRebind"]) | JSON_VALUES},
    optional={"response": RESPONSES, **{field: JSON_VALUES for field in RECORD_FIELDS}},
)


@PROPERTY_SETTINGS
@given(JSON_VALUES)
def test_any_json_value_is_parsed_without_raising(value: Any) -> None:
    assert_well_formed(kumomta.parse_records(value))


@PROPERTY_SETTINGS
@given(st.lists(RECORDS, max_size=4) | RECORDS)
def test_any_record_shaped_value_gives_valid_events_or_skips(data: Any) -> None:
    parsed = kumomta.parse_records(data)
    assert_well_formed(parsed)
    again = kumomta.parse_records(data)
    assert [event["event_id"] for event in parsed.events] == [event["event_id"] for event in again.events]


@PROPERTY_SETTINGS
@given(st.binary(max_size=200) | JSON_VALUES.map(lambda value: json.dumps(value).encode()))
def test_any_body_parses_or_raises_value_error(body: bytes) -> None:
    try:
        parsed = kumomta.parse_body(body)
    except ValueError as error:
        assert ONE_LINE.fullmatch(str(error))
    else:
        assert_well_formed(parsed)


TRICKY_STRINGS = st.text() | st.sampled_from([
    " a@b.example ", "<a@b.example>", "a  b", "a\tb", " ", "", "\ud800@b.example", "a\u2028b", "x" * 200,
    "x" * 201, "y" * 1000, "y" * 1001, "z" * 2000, "z" * 2001, "\x85", "é" * 999 + " ",
])


def careful_address(value: object) -> str | None:
    """`fields.address` the long way, as it was before its short path for a bare address."""
    found = fields.text(value, fields.MAX_EMAIL + 2)
    if found is None:
        return None
    if found.startswith("<") and found.endswith(">"):
        found = found[1:-1].strip()
    return found if 3 <= len(found) <= fields.MAX_EMAIL and fields.EMAIL.fullmatch(found) else None


@PROPERTY_SETTINGS
@given(TRICKY_STRINGS | JSON_VALUES, st.sampled_from([40, 100, 200, 1000, 2000]))
def test_the_short_paths_for_usual_values_give_what_the_long_ones_give(value: Any, limit: int) -> None:
    """The parser leans on the `fields` helpers' short paths (a printable string within its
    bound is taken as it is): they must give what cleaning the value would."""
    assert fields.address(value) == careful_address(value)
    if isinstance(value, str):
        assert fields.text(value, limit) == (fields.one_line(value, limit) or None)
        assert fields.metadata_value(value) == (fields.one_line(value, fields.MAX_METADATA_TEXT) or None)


RECORD_VALUES = TRICKY_STRINGS | JSON_VALUES | st.sampled_from([
    250, 450, 550, 199, 600, True, 2.0, 2**70, [], {}, ["a@b.example", "<c@d.example>"],
    {"class": 4, "subject": 2, "detail": 2}, {"class": 5, "subject": 1000, "detail": 0},
    {"address": "192.0.2.1:25"}, {"address": "[::]:0"}, {"Message-ID": "<m@x>", "message-id": "<n@x>"},
])


@PROPERTY_SETTINGS
@given(st.sampled_from(["delivery", "bounce-spam-block", "feedback", "oob"]),
       st.dictionaries(st.sampled_from(RECORD_FIELDS), RECORD_VALUES, max_size=4),
       st.dictionaries(st.sampled_from(["code", "enhanced_code", "content"]), RECORD_VALUES, max_size=2))
def test_a_usual_record_with_odd_values_gives_valid_events_or_skips(
    case: str, changes: dict[str, Any], response_changes: dict[str, Any]
) -> None:
    records = json.loads((FIXTURES / f"{case}.json").read_text("utf-8"))
    for record in records if isinstance(records, list) else [records]:
        record.update(changes)
        if isinstance(record.get("response"), dict):
            record["response"].update(response_changes)
        assert_well_formed(kumomta.parse_records(record))
