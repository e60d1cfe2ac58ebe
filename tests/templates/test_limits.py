"""Limits: a template cannot make a render slow or large, however it is written."""

from __future__ import annotations

import threading

import pytest

from mailhooks.templates import Limits, TemplateError, compile_template
from mailhooks.templates.limits import MAX_RANGE
from tests.templates.conftest import WHERE, Render, with_fields


def chain(name: str, depth: int) -> str:
    """`{% set x1 = [x0, x0] %}…`: a list that holds the same list twice at every level."""
    levels = "".join(f"{{% set {name}{i + 1} = [{name}{i}, {name}{i}] %}}" for i in range(depth))
    return f"{{% set {name}0 = [1] %}}{levels}"


PATHOLOGICAL = [
    # time
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}",
    "{% set r = range(10000) | list %}{% macro m() %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}"
    "{% endmacro %}{{ m() }}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
    "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "{% for e in events recursive %}{{ loop(events) }}{% endfor %}",
    # size of one value
    "{{ 'x' * 100000000 }}",
    "{{ 'x' ~ 'x' * 10**8 }}",
    "{{ '%*s' | format(10**9, 'x') }}",
    "{{ '%*s' % (10**9, 'x') }}",
    "{{ 'a'.center(10**9) }}",
    "{{ email.ljust(10**9) }}{{ email.zfill(10**9) }}",
    "{% set x = [1]*10**8 %}",
    "{% set x = (1,) * 10**8 %}",
    "{{ 10**10**10**10 }}",
    "{{ 2**100000 }}",
    "{{ (2**1000) * (2**1000) }}",
    "{% set s = 'x' * 60000 %}{{ s.replace('x', s) }}",
    "{% set s = 'x' * 60000 %}{{ s | replace('x', s) }}",
    "{{ ('x' * 60000).join(range(10000) | map('string')) }}",
    "{{ range(10000) | join('x' * 60000) }}",
    # size of what the template makes in all
    "{% set s = 'x' * 60000 %}{% set a = s ~ s %}{% set b = a ~ a %}{% set c = b ~ b %}{% set d = c ~ c %}"
    "{% set e = d ~ d %}{{ e | length }}",
    "{% macro f(n) %}{% if n %}{% set a = f(n - 1) %}{{ a }}{{ a }}{% else %}x{% endif %}{% endmacro %}"
    "{{ f(40) }}",
    "{% set x %}{% for a in range(10000) %}{% for b in range(10000) %}yyyyyyyyyy{% endfor %}{% endfor %}"
    "{% endset %}{{ x | length }}",
    "{{ ('x' * 60000).split('x') | map('d', 'y' * 60000, true) | join }}",
    "{% set s = ('x' * 60000).split('x') %}{% set t = s | map('d', s, true) | list %}"
    "{% set u = s | map('d', t, true) | list %}{{ u | length }}",
    # output
    "{% for a in range(10000) %}{{ email }}{% endfor %}",
    "{% for a in range(10000) %}{% for b in range(100) %}xxxxxxxxxx{% endfor %}{% endfor %}",
    # containers shared at every level: walking them would take 2**40 steps
    chain("a", 40) + chain("b", 40) + "{{ a40 == b40 }}",
    chain("a", 40) + chain("b", 40) + "{{ a40 in [b40] }}",
    chain("a", 40) + "{{ a40 }}",
    chain("a", 40) + "{{ a40 | json }}",
    chain("a", 40) + "{{ 'x' ~ a40 }}",
    chain("a", 40) + "{{ a40 | join }}",
    chain("a", 40) + "{{ [a40] | unique | list }}",
    chain("a", 40) + "{{ [a40, a40] | sort }}",
    chain("a", 40) + chain("b", 40) + "{{ [a40].count(b40) }}",
    chain("a", 40) + chain("b", 40) + "{{ a40 is eq(b40) }}",
    chain("a", 40) + chain("b", 40) + "{% for x in [a40, b40] %}{{ loop.changed(x) }}{% endfor %}",
]


@pytest.mark.parametrize("source", PATHOLOGICAL)
def test_a_pathological_template_is_stopped(source: str, render: Render) -> None:
    with pytest.raises(TemplateError) as raised:
        render(source)
    assert raised.value.message.startswith(("limit:", "unknown filter", "not allowed")), raised.value.message


def test_the_time_limit_is_a_parameter(render: Render) -> None:
    loop = "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateError, match="limit: rendering took longer than 5 ms"):
        render(loop, limits=Limits(time=0.005))


def test_the_size_limit_is_a_parameter(render: Render) -> None:
    source = "{% for a in range(20) %}{{ email }}{% endfor %}"
    assert len(render(source, limits=Limits(size=1000))) == 20 * len("recipient@example.com")
    with pytest.raises(TemplateError, match="limit: the text is longer than 100 characters"):
        render(source, limits=Limits(size=100))


def test_range_is_bounded(render: Render) -> None:
    assert render(f"{{{{ range({MAX_RANGE}) | list | length }}}}") == str(MAX_RANGE)
    with pytest.raises(TemplateError, match="range"):
        render(f"{{{{ range({MAX_RANGE + 1}) | list | length }}}}")


def test_limits_hold_off_the_main_thread() -> None:
    """No timer signal: the deadline works in any thread (the daemon's event loop)."""
    source = "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}"
    template = compile_template(source, where=WHERE, mode="text")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            template.render(with_fields())
        except TemplateError as error:
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(errors) == 1 and "limit: rendering took longer" in str(errors[0])


def test_a_stopped_render_leaves_the_next_one_unaffected(render: Render) -> None:
    with pytest.raises(TemplateError):
        render("{{ 'x' * 10**9 }}")
    assert render("{{ 'x' * 3 }} {% for a in range(3) %}{{ a }}{% endfor %}") == "xxx 012"
