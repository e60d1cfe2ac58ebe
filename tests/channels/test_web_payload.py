"""The web channel's `payload`: a body made from templates, always valid JSON (or a form),
signed over the exact bytes sent; without one, the spooled body as it is."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from mailhooks.channels.base import Message
from mailhooks.channels.http import Request
from mailhooks.channels.web import WebChannel, WebSender, encode_form, encode_json
from mailhooks.settings import Settings
from mailhooks.webhooks.load import load_webhooks
from tests.utils import Receiver

from .conftest import SAMPLE_EVENT, SECRETS

MakeWeb = Callable[..., WebSender]
SIGNING = SECRETS["${env:SIGNING}"]

# A CRM contact update, as the examples in webhooks.d/ send it.
CONTACT: dict[str, Any] = {
    "email": "{{ email }}",
    "properties": {
        "last_email_event": "{{ event }}",
        "campaign": "{{ campaign_id }}",
        "smtp_code": "{{ smtp_code }}",
        "code_or_zero": "{{ smtp_code | int }}",
        "bounced": "{{ (event == 'bounced') | bool }}",
        "note": "{{ broadcast_name }} via {{ sending_domain }}{{ bounce_type }}",
    },
    "source": "mailhooks",
    "version": 2,
}


def single(event: dict[str, Any], message_id: str = "msg_1") -> Message:
    return Message(message_id, [event], json.dumps(event, separators=(",", ":")).encode())


def batch(*events: dict[str, Any]) -> Message:
    body = json.dumps(list(events), separators=(",", ":")).encode()
    return Message("batch_1", list(events), body, batched=True)


def built(sender: WebSender, message: Message) -> Request:
    request = sender.build(message)
    assert isinstance(request, Request) and request.body is not None and request.headers is not None
    return request


def verified(request: Request, *, json_body: bool = True) -> Any:
    """The body, once Standard Webhooks' own library has verified its signature."""
    assert request.body is not None and request.headers is not None
    return Webhook(SIGNING).verify(request.body, dict(request.headers), json_parse=json_body)


async def test_the_payload_is_the_body_with_typed_leaves_and_signed(
    receiver: Receiver, make_web: MakeWeb
) -> None:
    sender = make_web(receiver.origin, secret="${env:SIGNING}", payload=CONTACT)
    assert (await sender.send(single(SAMPLE_EVENT))).ok
    [request] = receiver.requests
    assert request.headers["Content-Type"] == "application/json"
    body = Webhook(SIGNING).verify(request.body, dict(request.headers))
    assert body == {
        "email": "recipient@example.com",
        "properties": {
            "last_email_event": "delivered", "campaign": 123,
            "smtp_code": None,  # a field the event lacks, alone: null
            "code_or_zero": 0,  # the typed filter's default
            "bounced": False,
            "note": "January Newsletter via mail.example.com",  # missing in text: empty
        },
        "source": "mailhooks", "version": 2,
    }
    # Compact, in the payload's order: the bytes are what was signed.
    assert request.body == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def test_a_bounce_fills_what_a_delivery_left_null(make_web: MakeWeb) -> None:
    bounce = {**SAMPLE_EVENT, "event": "bounced", "smtp_code": 550, "bounce_type": "hard"}
    body = verified(built(make_web("https://crm.example.com/", secret="${env:SIGNING}",
                                   payload=CONTACT), single(bounce)))
    assert body["properties"]["smtp_code"] == 550 and body["properties"]["code_or_zero"] == 550
    assert body["properties"]["bounced"] is True
    assert body["properties"]["note"] == "January Newsletter via mail.example.comhard"


def test_a_batch_is_an_array_of_payloads(make_web: MakeWeb) -> None:
    sender = make_web("https://crm.example.com/", secret="${env:SIGNING}", batch={"max_events": 10},
                      payload={"id": "{{ event_id }}", "n": "{{ count }}"})
    events = [{**SAMPLE_EVENT, "event_id": f"e{n}"} for n in range(3)]
    assert verified(built(sender, batch(*events))) == [{"id": f"e{n}", "n": 1} for n in range(3)]


# A Segment-style batch: the events inside an object, with what is said once per batch.
ENVELOPE: dict[str, Any] = {"batch": "{{ events }}", "count": "{{ count }}", "sentBy": "{{ webhook.id }}",
                            "emails": "{{ events | map(attribute='email') | join(',') }}"}


async def test_an_envelope_holds_a_batchs_payloads_in_one_signed_object(
    receiver: Receiver, make_web: MakeWeb
) -> None:
    sender = make_web(receiver.origin, secret="${env:SIGNING}", batch={"max_events": 10},
                      payload={"userId": "{{ email }}", "event": "{{ event }}", "id": "{{ event_id }}"},
                      envelope=ENVELOPE)
    events = [{**SAMPLE_EVENT, "event_id": f"e{n}", "email": f"r{n}@example.com"} for n in range(3)]
    assert (await sender.send(batch(*events))).ok
    [request] = receiver.requests
    assert Webhook(SIGNING).verify(request.body, dict(request.headers)) == {
        "batch": [{"userId": f"r{n}@example.com", "event": "delivered", "id": f"e{n}"} for n in range(3)],
        "count": 3, "sentBy": "crm/opens", "emails": ",,",  # the payloads have no `email` key
    }


def test_an_envelope_without_a_payload_holds_the_events(make_web: MakeWeb) -> None:
    sender = make_web("https://crm.example.com/", secret="${env:SIGNING}", batch={"max_events": 10},
                      envelope=ENVELOPE)
    events = [{**SAMPLE_EVENT, "event_id": f"e{n}", "email": f"r{n}@example.com"} for n in range(2)]
    body = verified(built(sender, batch(*events)))
    assert body == {"batch": events, "count": 2, "sentBy": "crm/opens",
                    "emails": "r0@example.com,r1@example.com"}
    # One event that is not batched keeps the event as its body (the envelope is a batch's).
    assert verified(built(sender, single(events[0]))) == events[0]


def test_an_envelope_that_fails_fails_the_batch_for_good(make_web: MakeWeb) -> None:
    sender = make_web("https://crm.example.com/", batch={"max_events": 10},
                      envelope={"first": "{{ events[0].email }}", "bad": "{{ count + email }}"})
    outcome = sender.build(batch(SAMPLE_EVENT))
    assert not isinstance(outcome, Request) and not outcome.ok and not outcome.retry
    assert outcome.error is not None and "'email' is missing from this event" in outcome.error


async def test_form_encodes_the_fields_and_signs_the_exact_bytes(
    receiver: Receiver, make_web: MakeWeb
) -> None:
    payload = {"email": "{{ email }}", "campaign": "{{ campaign_id }}", "code": "{{ smtp_code }}",
               "test": "{{ test | bool }}", "meta": "{{ metadata }}", "text": "a&b=c {{ event }}",
               "ratio": 0.5}
    sender = make_web(receiver.origin, secret="${env:SIGNING}", content_type="form", payload=payload)
    event = {**SAMPLE_EVENT, "metadata": {"plan": "pro"}}
    assert (await sender.send(single(event))).ok
    [request] = receiver.requests
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    Webhook(SIGNING).verify(request.body, dict(request.headers), json_parse=False)
    assert parse_qsl(request.body.decode(), keep_blank_values=True) == [
        ("email", "recipient@example.com"), ("campaign", "123"), ("code", ""), ("test", "false"),
        ("meta", '{"plan":"pro"}'), ("text", "a&b=c delivered"), ("ratio", "0.5"),
    ]


class Untouchable(Sequence[dict[str, Any]]):
    """Events that fail the test when read: the default body must not look at them."""

    def __len__(self) -> int:
        raise AssertionError("the events were read")

    def __getitem__(self, index: Any) -> Any:
        raise AssertionError("the events were read")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        raise AssertionError("the events were read")


def test_without_a_payload_the_spooled_body_goes_as_it_is_unread(make_web: MakeWeb) -> None:
    body = b'{"event":"delivered","email":"a@example.com" , "spacing":"kept"}'
    request = built(make_web("https://crm.example.com/", secret="${env:SIGNING}"),
                    Message("msg_1", Untouchable(), body))
    assert request.body is body
    assert request.headers is not None and request.headers["Content-Type"] == "application/json"
    assert verified(request)["spacing"] == "kept"


def test_a_template_that_fails_on_an_event_fails_it_for_good(make_web: MakeWeb) -> None:
    sender = make_web("https://crm.example.com/", headers={"X-Api-Key": "${env:API_KEY}"},
                      payload={"next": "{{ smtp_code + 1 }}"})
    outcome = sender.build(single(SAMPLE_EVENT))
    assert not isinstance(outcome, Request)
    assert not outcome.ok and not outcome.retry
    assert outcome.error is not None and outcome.error.startswith(
        "the payload template failed: crm/opens:1:")


# -- hostile values never break the body ----------------------------------------------

HOSTILE = st.text(alphabet=st.characters(codec="utf-8"), max_size=200) | st.sampled_from(
    ['"', "\\", '", "x": "', "\x00\x1b[31m", "}{", "\u2028\u2029", "{{ email }}", "&=+%20?#", "💥"])
PAYLOAD: dict[str, Any] = {"text": "{{ diagnostic }}", "alone": "{{ broadcast_name }}",
                           "both": "{{ broadcast_name }}: {{ diagnostic }}",
                           "meta": "{{ metadata }}", "key": "{{ metadata.k }}"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=HOSTILE, second=HOSTILE)
def test_hostile_values_stay_valid_signed_json(make_web: MakeWeb, first: str, second: str) -> None:
    event = {**SAMPLE_EVENT, "diagnostic": first, "broadcast_name": second, "metadata": {"k": first}}
    sender = make_web("https://crm.example.com/", secret="${env:SIGNING}", payload=PAYLOAD)
    assert verified(built(sender, single(event))) == {
        "text": first, "alone": second, "both": f"{second}: {first}", "meta": {"k": first}, "key": first,
    }


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=HOSTILE, second=HOSTILE)
def test_hostile_values_stay_valid_signed_json_in_an_envelope(
    make_web: MakeWeb, first: str, second: str
) -> None:
    events = [{**SAMPLE_EVENT, "diagnostic": first, "broadcast_name": second, "metadata": {"k": first},
               "event_id": f"e{n}"} for n in range(2)]
    sender = make_web("https://crm.example.com/", secret="${env:SIGNING}", batch={"max_events": 10},
                      payload=PAYLOAD, envelope={"all": "{{ events }}", "texts": "{{ events | map(attribute="
                                                 "'text') | join('|') }}"})
    body = verified(built(sender, batch(*events)))
    assert body["all"] == [{"text": first, "alone": second, "both": f"{second}: {first}",
                            "meta": {"k": first}, "key": first}] * 2
    assert body["texts"] == f"{first}|{first}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=HOSTILE, second=HOSTILE)
def test_hostile_values_stay_one_field_each_in_a_form(make_web: MakeWeb, first: str, second: str) -> None:
    event = {**SAMPLE_EVENT, "diagnostic": first, "broadcast_name": second, "metadata": {"k": first}}
    sender = make_web("https://crm.example.com/", secret="${env:SIGNING}", content_type="form",
                      payload=PAYLOAD)
    request = built(sender, single(event))
    verified(request, json_body=False)
    assert request.body is not None
    fields = parse_qsl(request.body.decode("ascii"), keep_blank_values=True)
    assert fields == [("text", first), ("alone", second), ("both", f"{second}: {first}"),
                      ("meta", json.dumps({"k": first}, ensure_ascii=False, separators=(",", ":"))),
                      ("key", first)]


def test_text_that_is_not_unicode_is_escaped_not_refused() -> None:
    body = encode_json({"a": "\ud800 x", "b": "é"})
    assert json.loads(body) == {"a": "\ud800 x", "b": "é"}
    assert body.isascii()
    assert encode_json({"b": "é", "n": None, "f": 0.5}) == '{"b":"é","n":null,"f":0.5}'.encode()


def test_encode_form_writes_scalars_as_json_does() -> None:
    assert encode_form({"a": None, "b": True, "c": 1.5, "d": -2, "e": [1, "x"]}) == (
        b"a=&b=true&c=1.5&d=-2&e=%5B1%2C%22x%22%5D")


# -- validate -----------------------------------------------------------------------------


def problems(tmp_path: Path, channel: str) -> list[tuple[int, int, str]]:
    (tmp_path / "hook.yaml").write_text(
        "name: Hook\nevents: [delivered, bounced]\nchannel:\n  type: web\n"
        "  url: https://crm.example.com/hooks\n" + channel)
    return sorted((p.position.line, p.position.column, p.message)
                  for p in load_webhooks(tmp_path, Settings()).problems)


def test_the_loader_checks_the_payload_at_its_place(tmp_path: Path) -> None:
    assert problems(tmp_path, "  payload:\n    a: \"{{ email }}\"\n    b:\n      c: 'x {{ emial }}'\n") == [
        (9, 16, "unknown variable 'emial'; did you mean 'email'?"),
    ]
    assert problems(tmp_path, "  payload:\n    n: \"{{ smtp_code + 1 }}\"\n")[0][:2] == (7, 9)


def test_a_form_is_flat_one_event_and_needs_a_payload(tmp_path: Path) -> None:
    assert problems(tmp_path, "  content_type: form\n  batch: {max_events: 5}\n  payload:\n"
                              "    a: \"{{ email }}\"\n    b: {c: 1}\n    d: [1]\n") == [
        (7, 10, "channel.batch: a form body holds one event; remove batch or use content_type: json "
                "(a JSON array of payloads)"),
        (10, 8, "channel.payload.b: a form field must be text, a number, a boolean or null, "
                "not a mapping (nesting needs content_type: json)"),
        (11, 8, "channel.payload.d: a form field must be text, a number, a boolean or null, "
                "not a list (nesting needs content_type: json)"),
    ]
    assert problems(tmp_path, "  content_type: form\n") == [
        (6, 17, "channel.content_type: form needs a payload: the fields to send"),
    ]


def test_the_envelope_is_checked_against_a_batch_at_its_place(tmp_path: Path) -> None:
    # A name the batch has (`events`, `count`) is fine; an event's own field is empty there.
    assert problems(tmp_path, "  batch: {max_events: 5}\n  envelope:\n    all: \"{{ events }}\"\n"
                              "    n: \"{{ count + 1 }}\"\n") == []
    assert problems(tmp_path, "  batch: {max_events: 5}\n  envelope:\n    n: \"{{ smtp_code + 1 }}\"\n") == [
        (8, 9, "'smtp_code' is missing from this event (rendering a sample batch of events)"),
    ]
    assert problems(tmp_path,
                    "  batch: {max_events: 5}\n  envelope:\n    e: \"{{ events[0].emial }}\"\n") == [
        (8, 9, "event has no field 'emial' (rendering a sample batch of events)"),
    ]
    # With a payload, the batch's items are the payloads: any key they have is read.
    assert problems(tmp_path, "  batch: {max_events: 5}\n  payload: {to: \"{{ email }}\"}\n"
                              "  envelope: {first: \"{{ events[0].to | upper }}\"}\n") == []
    assert problems(tmp_path, "  envelope: {all: \"{{ events }}\"}\n") == [
        (6, 13, "channel.envelope: the body of a batch needs batch; without it, use payload"),
    ]


def test_a_per_event_template_is_not_rendered_against_a_batch(tmp_path: Path) -> None:
    # Delivery renders a payload for each event, so validate does too: `events` is that event.
    assert problems(tmp_path,
                    "  batch: {max_events: 5}\n  payload: {one: \"{{ ['x'][count - 1] }}\"}\n") == []


def test_the_payload_is_the_channels_template() -> None:
    channel = WebChannel.model_validate({"type": "web", "url": "https://x.example", "payload": CONTACT})
    [field] = channel.templates()
    assert (field.path, field.source, field.mode, field.payload) == (("channel", "payload"), CONTACT,
                                                                      "json", True)
    assert WebChannel.model_validate({"type": "web", "url": "https://x.example"}).templates() == []
