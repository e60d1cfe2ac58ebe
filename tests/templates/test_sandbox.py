"""The sandbox: no way from a template to Python's internals, to files, or to mutation."""

from __future__ import annotations

import pytest

from mailhooks.templates import TemplateError, compile_template
from tests.templates.conftest import WHERE, Render, with_fields

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ self.__init__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{% set ns = namespace() %}{{ ns }}",
    "{{ range.__self__ }}",
    "{{ range.__call__.__self__ }}",
    "{{ '{0.__class__}'.format(email) }}",
    "{{ '{0.__class__.__mro__}'.format_map({'0': email}) }}",
    "{{ '%s' | format(email) }}",
    "{{ '%s' % email }}",
    "{{ '%(x)s' % {'x': 1} }}",
    "{{ email['__class__'] }}",
    "{% set name = '__cla' ~ 'ss__' %}{{ email[name] }}",
    "{% set name = '__cla' ~ 'ss__' %}{{ metadata[name] }}",
    "{{ email | attr('__class__') }}",
    "{{ events | map(attribute='__class__') | list }}",
    "{{ events | map(attribute='__init__.__globals__') | list }}",
    "{{ events | selectattr('__class__') | list }}",
    "{{ events | sort(attribute='__class__') }}",
    "{{ (events | map(attribute='email')).gi_frame }}",
    "{{ (events | map(attribute='email')).gi_code }}",
    "{{ email.upper.__self__ }}",
    "{{ email.encode() }}",
    "{{ metadata.__class__ }}",
    "{{ webhook._values }}",
    "{{ events[0]._Record__values }}",
    "{% for x in events %}{{ loop._iterator }}{% endfor %}",
    "{% for x in events %}{{ loop['_after'] }}{% endfor %}",
    "{% macro m() %}{% endmacro %}{{ m._func.__globals__ }}",
    "{% macro m() %}{% endmacro %}{{ m._environment }}",
    "{{ environment }}",
    "{{ context }}",
    "{{ config }}",
    "{{ dict(a=1) }}",
    "{{ [].append(1) }}",
    "{{ metadata.update({'a': 1}) }}",
    "{% set d = {'a': 1} %}{{ d.clear() }}",
    "{% set d = {'a': 1} %}{{ d.pop('a') }}",
    "{{ [email] | map('attr', '__class__') | list }}",
    "{% include 'webhooks.d/other.yaml' %}",
    "{% import 'macros.j2' as m %}",
    "{% from 'macros.j2' import m %}",
    "{% extends 'base.j2' %}",
    "{% block b %}{% endblock %}",
    "{% autoescape false %}{{ email }}{% endautoescape %}",
]
LEAKS = ("<class", "mro", "globals", "function", "module", " at 0x", "builtins", "subclasses")


@pytest.mark.parametrize("source", ESCAPES)
def test_a_sandbox_escape_is_refused(source: str, render: Render) -> None:
    with pytest.raises(TemplateError) as raised:
        output = render(source, values=with_fields(metadata={"a": "b"}))
        pytest.fail(f"rendered {output!r}")
    assert raised.value.file == WHERE.file
    message = raised.value.message
    assert not any(leak in message for leak in LEAKS if leak not in source), message


def test_the_only_global_is_a_bounded_range(render: Render) -> None:
    template = compile_template("{{ range(3) | list }}", where=WHERE, mode="text")
    assert template.render(with_fields()) == "[0,1,2]"
    env = template._env
    assert set(env.globals) == {"range"}
    assert env.loader is None


def test_reading_methods_of_strings_lists_and_dicts_work(render: Render) -> None:
    assert render("{{ email.split('@')[1].upper() }} {{ email.startswith('rec') }}") == "EXAMPLE.COM true"
    assert render("{{ {'a': 1}.get('a') }} {{ {'a': 1}.a }} {{ [1, 2, 1].count(1) }} "
                  "{{ ','.join(['a', 'b']) }}") == "1 1 2 a,b"
    assert render("{% for x in [1, 2] %}{{ loop.index }}{{ loop.cycle('a', 'b') }}{% endfor %}") == "1a2b"
    assert render("{% macro greet(n) %}hi {{ n }}{% endmacro %}{{ greet(email) }}") \
        == "hi recipient@example.com"
    assert render("{% macro m() %}[{{ caller() }}]{% endmacro %}{% call m() %}x{% endcall %}") == "[x]"


def test_attribute_errors_at_render_say_what_is_missing(render: Render) -> None:
    with pytest.raises(TemplateError, match="'str object' has no attribute 'nope'"):
        render("{{ email.nope }}")
    with pytest.raises(TemplateError, match="a int cannot be called"):
        render("{{ smtp_code() }}")
