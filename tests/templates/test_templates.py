"""Compiling and rendering: variables, positions of errors, filters."""

from __future__ import annotations

import pickle
import time
from datetime import UTC, datetime

import pytest

from mailhooks.events import Event
from mailhooks.templates import (
    FILTERS,
    VARIABLES,
    TemplateError,
    Variables,
    Where,
    batch_variables,
    compile_template,
    event_variables,
    sample_payload,
)
from mailhooks.templates.values import EVENT_FIELDS
from tests.templates.conftest import WHERE, Render, with_fields


def error_of(source: str, variables: Variables | None = None, where: Where = WHERE) -> TemplateError:
    """The TemplateError of compiling `source` or, when it compiles, of rendering it."""
    with pytest.raises(TemplateError) as raised:
        template = compile_template(source, where=where, mode="text")
        template.render(variables if variables is not None else with_fields())
    return raised.value


# -- compile once, render per delivery


def test_a_template_compiles_once_and_renders_each_event() -> None:
    template = compile_template("{{ event }} to {{ email }}", where=WHERE, mode="text")
    assert template.render(with_fields(event="bounced", email="a@x.org")) == "bounced to a@x.org"
    assert template.render(with_fields(event="delivered", email="b@y.org")) == "delivered to b@y.org"


def test_an_event_model_and_its_payload_give_the_same_variables() -> None:
    event = Event.model_validate(sample_payload("delivered"))
    source = "{{ timestamp }} {{ campaign_id }} {{ metadata.source }}"
    template = compile_template(source, where=WHERE, mode="text")
    from_model = event_variables(event, webhook_id="a", webhook_name="A")
    from_payload = event_variables(event.payload(), webhook_id="a", webhook_name="A")
    assert template.render(from_model) == template.render(from_payload)


# -- variables


def test_the_variables_are_every_event_field_and_webhook_events_count() -> None:
    assert set(Event.model_fields) == set(EVENT_FIELDS)
    assert {*Event.model_fields, "webhook", "events", "count"} == VARIABLES


@pytest.mark.parametrize("field", EVENT_FIELDS)
def test_every_event_field_is_a_variable(field: str, render: Render, bare: Variables) -> None:
    assert render(f"{{{{ {field} is defined }}}}") in ("true", "false")
    written = render(f"[{{{{ {field} }}}}]", values=bare)
    assert written == "[]" or field in ("event", "email", "message_id", "timestamp", "event_id")


def test_a_missing_field_is_empty_not_an_error(render: Render, bare: Variables) -> None:
    assert render("[{{ bounce_type }}][{{ smtp_code }}][{{ metadata }}]", values=bare) == "[][][]"
    assert render("{{ bounce_type | upper }}|{{ bounce_type ~ 'x' }}", values=bare) == "|x"
    assert render("{{ bounce_type is defined }} {{ event is defined }}", values=bare) == "false true"
    assert render("{{ bounce_type | default('n/a') }} {{ 'y' if bounce_type else 'n' }}", values=bare) \
        == "n/a n"


def test_arithmetic_on_a_missing_field_is_an_error_naming_it(bare: Variables) -> None:
    error = error_of("{{ smtp_code + 1 }}", bare)
    assert "'smtp_code' is missing from this event" in error.message


def test_an_unknown_name_is_an_error_at_compile_time_where_it_is_first_used() -> None:
    error = error_of("Hi {{ email }},\n  {{ event }} {{ emial }} {{ emial }}")
    assert (error.line, error.column) == (6, 9 + 17)
    assert error.message == "unknown variable 'emial'; did you mean 'email'?"


@pytest.mark.parametrize("name", ["self", "cycler", "joiner", "lipsum", "namespace", "dict", "loop",
                                  "caller", "varargs", "kwargs", "environment", "config", "request"])
def test_names_that_are_no_variable_are_errors(name: str) -> None:
    assert error_of(f"{{{{ {name} }}}}").message.startswith(f"unknown variable {name!r}")


def test_a_name_set_only_on_another_branch_fails_at_render_through_strict_undefined() -> None:
    # Jinja reports a name set in an {% if %} as undeclared; it is allowed at compile time...
    template = compile_template("{% if smtp_code %}{% set code = smtp_code %}{% endif %}{{ code }}",
                                where=WHERE, mode="text")
    assert template.render(with_fields(smtp_code=550)) == "550"
    # ...and StrictUndefined makes its use where it is not set an error.
    with pytest.raises(TemplateError, match="'code' is undefined"):
        template.render(with_fields(smtp_code=None))


def test_metadata_keys_are_attributes_and_a_missing_key_is_empty(render: Render) -> None:
    values = with_fields(metadata={"campaign": "spring", "items": 3, "_private": "p"})
    assert render("{{ metadata.campaign }}|{{ metadata.nope }}|{{ metadata.nope.deeper }}", values=values) \
        == "spring||"
    assert render("{{ metadata['items'] }} {{ metadata.items }} {{ metadata['_private'] }}", values=values) \
        == "3 3 p"
    assert render("{% for k, v in metadata | items %}{{ k }}={{ v }};{% endfor %}", values=values) \
        == "campaign=spring;items=3;_private=p;"
    assert render("{{ metadata.campaign }}|{{ metadata }}", values=with_fields(metadata=None)) == "|"


def test_webhook_is_its_id_and_name_and_nothing_else(render: Render) -> None:
    values = event_variables(sample_payload("delivered"), webhook_id="crm/opens", webhook_name="CRM")
    assert render("{{ webhook.id }} {{ webhook.name }} {{ webhook['id'] }}", values=values) \
        == "crm/opens CRM crm/opens"
    assert "webhook has no field 'url'" in error_of("{{ webhook.url }}", values).message


def test_events_and_count_for_one_event_and_for_a_batch(render: Render) -> None:
    one = event_variables(sample_payload("delivered"), webhook_id="a", webhook_name="A")
    assert render("{{ count }} {{ events | map(attribute='event') | join(',') }}", values=one) \
        == "1 delivered"
    payloads = [sample_payload(name) for name in ("bounced", "delivered", "complaint")]
    batch = batch_variables(payloads, webhook_id="a", webhook_name="A")
    source = "{{ count }}:{% for e in events %} {{ e.event }}/{{ e.bounce_type }}{% endfor %}|{{ event }}"
    assert render(source, values=batch) == "3: bounced/hard delivered/ complaint/|"
    assert render("{{ events | selectattr('event', 'eq', 'bounced') | list | length }}", values=batch) == "1"
    error = error_of("{% for e in events %}{{ e.emial }}{% endfor %}", batch)
    assert "event has no field 'emial'" in error.message


def test_values_are_written_as_in_json(render: Render) -> None:
    values = with_fields(test=True, metadata={"a": 1, "b": "x"})
    assert render("{{ test }} {{ none }} {{ metadata }} {{ [1, 'a', false] }}", values=values) \
        == 'true  {"a":1,"b":"x"} [1,"a",false]'
    assert render("{{ 'ab' ~ 3 ~ true ~ none }}{{ 'x' ~ test }}", values=values) == "ab3truextrue"


# -- where errors point


def test_an_error_on_the_third_line_of_a_block_scalar_points_at_that_line() -> None:
    where = Where("hooks/alerts.yaml", 12, 5)
    source = "Bounce for {{ email }}\nCampaign {{ broadcast_name }}\nCode {{ smtp_code + bounce_type }}\n"
    error = error_of(source, where=where)
    assert (error.file, error.line, error.column) == ("hooks/alerts.yaml", 14, 5)
    assert str(error) == f"hooks/alerts.yaml:14:5: {error.message}"


@pytest.mark.parametrize(("source", "line", "column", "message"), [
    ("a\nb\n{{ email ", 3, 1, "syntax error: unexpected end of template"),
    ("a\nb\n{% for x in events %}", 3, 1, "syntax error: Unexpected end of template"),
    ("a\nb\nc {{ email | domian }}", 3, 14, "unknown filter 'domian'; did you mean 'domain'?"),
    ("a\nb\nc {{ email is strnig }}", 3, 15, "unknown test 'strnig'"),
    ("a\nb\nc {{ email.__class__ }}", 3, 12, "attribute '__class__' is not available"),
    ("a\nb\nc {% include 'x.j2' %}", 3, 6, "{% include %} is not available"),
    ("a\nb\nc {{ timestamp | datetime('%H', 'Mars/Olympus') }}", 3, 33, "unknown time zone 'Mars/Olympus'"),
])
def test_compile_errors_point_at_their_line_and_column(
    source: str, line: int, column: int, message: str
) -> None:
    error = error_of(source, where=Where("w.yaml", 10, 1))
    assert (error.line, error.column) == (10 + line - 1, column)
    assert error.message.startswith(message)


def test_on_a_single_line_the_column_is_added_to_the_scalars_column() -> None:
    error = error_of("Hello {{ emial }}", where=Where("w.yaml", 4, 13))
    assert (error.line, error.column) == (4, 13 + 9)


def test_a_template_error_prints_and_pickles_as_path_line_col_message() -> None:
    error = TemplateError("boom", "hooks/a.yaml", 3, 7)
    assert str(error) == "hooks/a.yaml:3:7: boom"
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.message, copy.line) == (str(error), "boom", 3)


# -- filters


def test_the_filters_are_the_documented_short_list() -> None:
    assert set(FILTERS) == {
        "abs", "bool", "capitalize", "count", "d", "datetime", "default", "dictsort", "domain", "first",
        "float", "groupby", "int", "items", "join", "json", "last", "length", "list", "lower", "map", "max",
        "min", "reject", "rejectattr", "replace", "reverse", "round", "select", "selectattr", "sort",
        "string", "sum", "title", "trim", "truncate", "unique", "upper", "urlencode",
    }


def test_datetime_in_a_zone(render: Render) -> None:
    values = with_fields(timestamp=datetime(2024, 1, 15, 10, 30, tzinfo=UTC).isoformat())
    assert render('{{ timestamp | datetime("%Y-%m-%d %H:%M", "Europe/Berlin") }}', values=values) \
        == "2024-01-15 11:30"
    assert render("{{ timestamp | datetime }}", values=values) == "2024-01-15 10:30 UTC"
    assert render("{{ timestamp | datetime(zone='America/New_York', format='%H:%M %Z') }}", values=values) \
        == "05:30 EST"
    values = with_fields(bounce_type=None)
    assert render("{{ 0 | datetime('%Y') }}|{{ bounce_type | datetime }}", values=values) == "1970|"


def test_datetime_unix_seconds_do_not_depend_on_the_hosts_zone(
        render: Render, monkeypatch: pytest.MonkeyPatch) -> None:
    # The C library's %s reads the fields as local time: on a host in New York it was 5 h off.
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        values = with_fields(timestamp="2024-01-15T10:30:00Z")
        assert render("{{ timestamp | datetime('%s', 'Europe/Berlin') }}", values=values) == "1705314600"
        assert render("{{ timestamp | datetime('%%s %%%s %Y%%') }}", values=values) == "%s %1705314600 2024%"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_datetime_with_an_unknown_zone_from_the_event_fails_at_render() -> None:
    values = with_fields(metadata={"zone": "Nowhere/Land"})
    assert "unknown time zone 'Nowhere/Land'" in error_of("{{ timestamp | datetime('%H', metadata.zone) }}",
                                                          values).message


def test_domain(render: Render) -> None:
    values = with_fields(email="Jo@Mail.Example.COM", link_url=None)
    assert render("{{ email | domain }}", values=values) == "mail.example.com"
    assert render("[{{ 'no address' | domain }}][{{ link_url | domain }}]", values=values) == "[][]"


def test_truncate_is_jinjas_without_leeway(render: Render) -> None:
    assert render("{{ ('x' * 23) | truncate(20) }}") == "x" * 17 + "..."
    assert render("{{ 'one two three four five six' | truncate(15) }}") == "one two..."
    assert render("{{ 'short' | truncate(20) }}") == "short"


def test_typed_filters(render: Render) -> None:
    assert render("{{ '42' | int + 1 }} {{ 'x' | int }} {{ 'x' | int(-1) }} {{ '2.5' | int }} "
                  "{{ 'ff' | int(base=16) }}") == "43 0 -1 2 255"
    assert render("{{ '2.5' | float * 2 }} {{ 'inf' | float }} {{ 'nan' | float(1.5) }}") == "5.0 0.0 1.5"
    assert render("{{ 'yes' | bool }} {{ 'Off' | bool }} {{ 0 | bool }} {{ 'maybe' | bool }} "
                  "{{ 'maybe' | bool(true) }}") == "true false false false true"


def test_json_join_replace_string_sum_urlencode(render: Render) -> None:
    values = with_fields(metadata={"a": 1, "b": "<x>"})
    assert render("{{ metadata | json }} {{ bounce_type | json }} {{ 'a\"b' | json }}", values=values) \
        == '{"a":1,"b":"<x>"} "hard" "a\\"b"'
    assert render("{{ [1, true, none, 'x'] | join('-') }} {{ 'a.b.c' | replace('.', '/') }}") \
        == "1-true--x a/b/c"
    assert render("{{ [1, 2.5, 3] | sum }} {{ [3, 1, 2] | sort | string }}") == "6.5 [1,2,3]"
    assert render("{{ 'a b&c' | urlencode }} {{ {'q': 'a b', 'n': 1} | urlencode }}") \
        == "a%20b%26c q=a%20b&n=1"


def test_jinjas_everyday_filters_work(render: Render) -> None:
    values = batch_variables([sample_payload(name) for name in ("bounced", "bounced", "delivered")],
                             webhook_id="a", webhook_name="A")
    source = ("{% for name, group in events | groupby('event') %}{{ name }}={{ group | length }} {% endfor %}"
              "{{ events | map(attribute='event') | unique | join(',') | upper }}")
    assert render(source, values=values) == "bounced=2 delivered=1 BOUNCED,DELIVERED"
