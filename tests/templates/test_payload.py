"""Payload templates: a YAML mapping of templates that always renders to valid JSON."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailhooks.templates import (
    Limits,
    TemplateError,
    Variables,
    Where,
    batch_variables,
    compile_payload,
    sample_payload,
)
from mailhooks.templates.payload import Path
from tests.templates.conftest import with_fields


def positions(path: Path) -> Where:
    """A made-up layout: each level of the payload one line further and two columns deeper."""
    return Where("hooks/crm.yaml", 20 + len(path), 5 + 2 * len(path))


def render(payload: Any, values: Variables | None = None, limits: Limits | None = None) -> Any:
    template = compile_payload(payload, positions=positions, limits=limits or Limits())
    return template.render(with_fields() if values is None else values)


def test_a_variable_alone_keeps_its_type() -> None:
    values = with_fields(campaign_id=123, smtp_code=550, test=True, metadata={"a": 1, "b": "x"})
    out = render({"campaign": "{{ campaign_id }}", "code": "{{smtp_code}}", "test": " {{ test }} ",
                  "meta": "{{ metadata }}", "when": "{{ timestamp }}", "count": "{{ count }}",
                  "hook": "{{ webhook }}"}, values)
    assert out["campaign"] == 123 and out["code"] == 550 and out["test"] is True
    assert out["meta"] == {"a": 1, "b": "x"}
    assert isinstance(out["when"], str) and out["when"].endswith("Z")
    assert out["count"] == 1 and out["hook"] == {"id": "crm/opens", "name": "CRM opens"}


def test_a_missing_field_alone_is_null_and_in_text_is_empty() -> None:
    values = with_fields(bounce_type=None, metadata=None)
    payload = {"bounce": "{{ bounce_type }}", "meta": "{{ metadata }}", "text": "type={{ bounce_type }}"}
    out = render(payload, values)
    assert out == {"bounce": None, "meta": None, "text": "type="}


def test_typed_filters_make_numbers_and_booleans() -> None:
    values = with_fields(metadata={"n": "42", "f": "2.5", "flag": "yes"}, smtp_code=None)
    out = render({"n": "{{ metadata.n | int }}", "f": "{{ metadata.f | float }}",
                  "b": "{{ metadata.flag | bool }}", "missing": "{{ smtp_code | int }}",
                  "chosen": "{{ smtp_code | int(-1) }}", "sum": "{{ (metadata.n | int + 1) | string }}",
                  "expr": "{{ (metadata.n ~ '0') | int }}"}, values)
    assert out == {"n": 42, "f": 2.5, "b": True, "missing": 0, "chosen": -1, "sum": "43", "expr": 420}


def test_events_alone_is_the_list_of_events() -> None:
    payloads = [sample_payload("bounced"), sample_payload("delivered")]
    values = batch_variables(payloads, webhook_id="a", webhook_name="A")
    out = render({"events": "{{ events }}", "n": "{{ count }}", "first": "{{ events[0].email }}"}, values)
    assert out == {"events": payloads, "n": 2, "first": "recipient@example.com"}


def test_constants_stay_and_nesting_is_kept() -> None:
    payload = {"version": 2, "ratio": 0.5, "on": False, "none": None, "plain": "no template",
               "nested": {"list": [1, "{{ event }}", {"deep": "{{ campaign_id }}"}], "empty": []}}
    assert render(payload) == {"version": 2, "ratio": 0.5, "on": False, "none": None, "plain": "no template",
                               "nested": {"list": [1, "bounced", {"deep": 123}], "empty": []}}


def test_text_leaves_are_not_escaped_the_json_encoder_does_that() -> None:
    values = with_fields(diagnostic='550 "quoted" \\ <tag> \n next')
    out = render({"text": "Diagnostic: {{ diagnostic }}"}, values)
    assert out["text"] == 'Diagnostic: 550 "quoted" \\ <tag> \n next'
    assert json.loads(json.dumps(out)) == out


def test_an_error_in_a_leaf_points_at_that_leaf() -> None:
    with pytest.raises(TemplateError) as raised:
        compile_payload({"a": {"b": ["ok", "{{ emial }}"]}}, positions=positions)
    assert (raised.value.line, raised.value.column) == (23, 11 + 3)
    template = compile_payload({"a": {"b": "x\n{{ smtp_code + 'x' }}"}}, positions=positions)
    with pytest.raises(TemplateError) as raised:
        template.render(with_fields())
    assert (raised.value.line, raised.value.column) == (23, 9)


@pytest.mark.parametrize(("payload", "message"), [
    ({1: "x"}, "a payload key must be a string"),
    ({"a": float("nan")}, "a payload value must be text, a number"),
    ({"a": b"bytes"}, "a payload value must be text, a number"),
    (["not", "a", "mapping"], "a payload must be a mapping"),
])
def test_what_is_not_json_is_refused(payload: Any, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        compile_payload(payload, positions=positions)


def test_the_payloads_text_is_limited_as_a_whole() -> None:
    payload = {"a": "{% for x in range(25) %}{{ email }}{% endfor %}",
               "b": "{% for x in range(5) %}{{ email }}{% endfor %}"}
    assert len(render(payload, limits=Limits(size=700))["a"]) == 25 * 21
    with pytest.raises(TemplateError, match="limit: the payload's text is longer than 600 characters"):
        render(payload, limits=Limits(size=600))


def test_a_typed_leaf_is_always_json() -> None:
    with pytest.raises(TemplateError, match="cannot write a function as text"):
        render({"a": "{{ range }}"})
    for source in ("{{ 'x' | int(range) }}", "{{ 'x' | int(metadata) }}", "{{ 'x' | float(1e308 * 10) }}"):
        with pytest.raises(TemplateError, match="a typed value must be a number, a boolean, text or null"):
            render({"a": source}, with_fields(metadata={"k": 1}))


def test_a_pathological_leaf_is_stopped() -> None:
    with pytest.raises(TemplateError, match="limit"):
        render({"a": "{{ ('x' * 10**8) | length | int }}"})


TEXT = st.text(max_size=100)


@settings(max_examples=60, deadline=None)
@given(diagnostic=TEXT, campaign=st.integers(-(2**63), 2**63 - 1) | TEXT,
       metadata=st.dictionaries(st.text(min_size=1, max_size=10), TEXT | st.integers() | st.booleans(),
                                max_size=4))
def test_any_event_gives_a_valid_json_body(diagnostic: str, campaign: Any, metadata: dict[str, Any]) -> None:
    values = with_fields(diagnostic=diagnostic, campaign_id=campaign, metadata=metadata or None)
    template = compile_payload({"text": "{{ diagnostic }}: {{ campaign_id }} {{ metadata }}",
                                "campaign": "{{ campaign_id }}", "meta": "{{ metadata }}",
                                "n": "{{ campaign_id | int }}", "deep": ["{{ metadata | json }}"]},
                               positions=positions)
    body = template.render(values)
    assert json.loads(json.dumps(body, allow_nan=False)) == body
    assert body["campaign"] == campaign and body["meta"] == (metadata or None)


SIMPLE_LEAVES = [
    "{{ sending_node }} via {{ sending_domain }}", "{{ email | domain }}", "{{ smtp_code | int }}",
    "{{ diagnostic | float }}", "{{ bounce_type | bool }}", "x{{ diagnostic | upper }}y",
    "{{ metadata }} and {{ events }}", "{{ campaign_id | string }}-{{ count }}", "{{ link_url | trim }}",
    "{{ timestamp | datetime }}", "{{ diagnostic | length }}", "{{ broadcast_name | title }} ",
    "at {{ diagnostic | datetime }}", "{{ email }}\n\n{{ diagnostic | datetime }}",
]
VALUE = st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.text(max_size=30) | st.floats()


@pytest.mark.parametrize("mode", ["json", "slack", "telegram_markdown"])
@settings(max_examples=60, deadline=None)
@given(diagnostic=VALUE, node=st.text(max_size=10) | st.none(), leaf=st.sampled_from(SIMPLE_LEAVES))
def test_a_simple_leaf_renders_as_jinja_renders_it(mode: str, diagnostic: Any, node: Any, leaf: str) -> None:
    # Text and variables, each alone or through one argument-less filter, skip Jinja's
    # render machinery: the value, or the error, must be what Jinja gives.
    values = with_fields(diagnostic=diagnostic, sending_node=node, metadata={"k": diagnostic})

    def outcome(source: str) -> Any:
        payload = compile_payload({"v": source}, positions=positions, mode=mode)  # type: ignore[arg-type]
        try:
            return payload.render(values)["v"]
        except TemplateError as error:
            return ("error", error.message, error.line)

    # Jinja renders what is no simple leaf: the text wrapped in "{% if true %}", or a
    # typed filter applied twice (the same value).
    typed = re.fullmatch(r"\{\{ (\w+) \| (int|float|bool) \}\}", leaf)
    reference = (f"{{{{ {typed[1]} | {typed[2]} | {typed[2]} }}}}" if typed
                 else "{% if true %}" + leaf + "{% endif %}")
    assert outcome(leaf) == outcome(reference)
