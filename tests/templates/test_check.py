"""Sample events and `check`: what `validate` runs so a broken template fails CI."""

from __future__ import annotations

import pytest

from mailhooks.events import EVENT_NAMES, EventName
from mailhooks.templates import (
    Where,
    check,
    compile_payload,
    compile_template,
    sample_context,
    sample_payload,
)
from mailhooks.templates.samples import ALWAYS

WHERE = Where("hooks/alerts.yaml", 8, 7)


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_a_sample_has_the_usual_fields_and_a_bare_one_only_what_every_event_has(name: EventName) -> None:
    full = sample_payload(name)
    assert {"event", "email", "message_id", "timestamp", "event_id", "campaign_id", "metadata"} <= set(full)
    assert full["event"] == name
    assert set(sample_payload(name, bare=True)) == set(ALWAYS)
    assert sample_context(name)["event"] == name


def test_a_template_that_renders_everywhere_has_no_errors() -> None:
    source = "{{ event }}: {{ email }} {{ smtp_code | default('') }} {{ metadata.source }}"
    template = compile_template(source, where=WHERE, mode="slack")
    assert check(template, EVENT_NAMES) == []


def test_a_template_that_fails_without_an_optional_field_fails_in_ci() -> None:
    template = compile_template("Bounce\n{{ email }}: {{ smtp_code // 100 }}xx", where=WHERE, mode="slack")
    errors = check(template, ["bounced", "delivered"])
    assert [str(error) for error in errors] == [
        "hooks/alerts.yaml:9:7: 'smtp_code' is missing from this event "
        "(rendering a sample 'bounced' event with no optional fields)",
    ]


def test_a_template_that_fails_only_for_some_events_names_that_event() -> None:
    template = compile_template("{{ link_url.split('/')[2] }}", where=WHERE, mode="text")
    messages = [error.message for error in check(template, ["newsletter_clicked", "delivered"])]
    assert messages == ["'link_url' is missing from this event "
                        "(rendering a sample 'newsletter_clicked' event with no optional fields)"]


def test_a_template_for_each_event_is_checked_per_event_and_one_per_batch_on_a_batch() -> None:
    template = compile_template("{{ ['only one'][count - 1] }}", where=WHERE, mode="text")
    assert check(template, ["bounced", "delivered"]) == []  # delivery renders it for one event
    assert check(template, ["bounced"], per_batch=True) == []
    errors = check(template, ["bounced", "delivered"], per_batch=True)
    assert [error.message for error in errors] == [
        "list object has no element 1 (rendering a sample batch of events)"]


def test_check_takes_a_payload() -> None:
    payload = compile_payload({"code": "{{ smtp_code | int }}", "bad": "{{ smtp_code - 1 }}"},
                              positions=lambda path: Where("hooks/p.yaml", 3 + len(path), 3))
    errors = check(payload, ["bounced"])
    assert len(errors) == 1 and str(errors[0]).startswith("hooks/p.yaml:4:3: 'smtp_code' is missing")
