"""Each mode escapes values for its service, and never the template's own text."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailhooks.templates import MODES, Mode, compile_template
from mailhooks.templates.escaping import ZWSP
from tests.templates.conftest import WHERE, Render, with_fields

LITERAL = {
    "json": '{"text": "',
    "text": "Bounce: ",
    "slack": "<https://example.com|report> *bold* <!here> ",
    "telegram_html": '<b>Bounce</b> <a href="https://example.com">x</a> ',
    "telegram_markdown": "*Bounce* [report](https://example.com) ",
    "discord": "**Bounce** <@&123> @here ",
    "teams": "**Bounce** [report](https://example.com) ",
}
ATTACK = "@everyone @Here <@123> <@&1> <#2> <!channel> <https://evil|click> **x** </b><a href=\"x\">y</a> [l](http://e)"
MARKDOWN_V2 = set("_*[]()~`>#+-=|{}.!\\")
DISCORD = set("\\*_~`|>#-[]()")
TEAMS = set("\\*_[]()~`")


def render_field(mode: Mode, value: Any) -> str:
    template = compile_template("{{ diagnostic }}", where=WHERE, mode=mode)
    return template.render(with_fields(diagnostic=value))


def all_escaped(text: str, special: set[str]) -> bool:
    """Every character of `special` in `text` has a backslash before it."""
    index = 0
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] in special:
            return False
        index += 1
    return True


@pytest.mark.parametrize("mode", MODES)
def test_the_templates_own_text_is_never_escaped(mode: Mode, render: Render) -> None:
    assert render(LITERAL[mode] + "{{ event }}", mode=mode) == LITERAL[mode] + "bounced"


@pytest.mark.parametrize("mode", MODES)
def test_a_macros_or_set_blocks_own_text_is_not_escaped_twice(mode: Mode, render: Render) -> None:
    # Their text is the template's, with each value escaped once inside; written out, it
    # is not escaped again (Telegram showed `&lt;b&gt;` where the template said `<b>`).
    values = with_fields(diagnostic=ATTACK)
    once = render(LITERAL[mode] + "{{ diagnostic }}", mode=mode, values=values)
    macro = ("{% macro line(value) %}" + LITERAL[mode] + "{{ value }}{% endmacro %}"
             "{{ line(diagnostic) }}")
    block = "{% set text %}" + LITERAL[mode] + "{{ diagnostic }}{% endset %}{{ text }}"
    assert render(macro, mode=mode, values=values) == once
    assert render(block, mode=mode, values=values) == once
    # Anything made from that text is a value again: escaped, never let through raw.
    joined = render("{% set text %}{{ diagnostic }}{% endset %}{{ text ~ '' }}", mode=mode, values=values)
    assert mode in ("json", "text") or ATTACK not in joined


def test_discord_values_cannot_mention_or_format() -> None:
    out = render_field("discord", "@everyone <@&1> **x** @here <#5>")
    assert "@everyone" not in out and "@here" not in out
    assert "<@" not in out and "<#" not in out
    assert "**" not in out and "\\*\\*x\\*\\*" in out
    assert out.replace(ZWSP, "") == "@everyone <@&1\\> \\*\\*x\\*\\* @here <\\#5\\>"


def test_slack_values_cannot_form_a_link_or_mention() -> None:
    out = render_field("slack", "<!channel> <https://evil|click> a & b")
    assert "<" not in out and ">" not in out
    assert out == "&lt;!channel&gt; &lt;https://evil|click&gt; a &amp; b"


def test_telegram_html_values_cannot_inject_html() -> None:
    out = render_field("telegram_html", '</b><a href="https://evil">x</a>')
    assert "<" not in out and '"' not in out
    assert html.unescape(out) == '</b><a href="https://evil">x</a>'


def test_telegram_markdown_values_are_escaped_as_the_bot_api_requires() -> None:
    assert render_field("telegram_markdown", "5.1.1 [x](y) *b* a_b!") \
        == "5\\.1\\.1 \\[x\\]\\(y\\) \\*b\\* a\\_b\\!"


def test_teams_values_cannot_form_a_link_or_list() -> None:
    assert render_field("teams", "[click](https://evil) **b**") \
        == "\\[click\\]\\(https://evil\\) \\*\\*b\\*\\*"
    assert render_field("teams", "- one\n2. two\nmail.example.com") == "\\- one\n2\\. two\nmail.example.com"


@pytest.mark.parametrize("mode", ["json", "text"])
def test_json_and_text_values_are_as_they_are(mode: Mode) -> None:
    assert render_field(mode, ATTACK) == ATTACK


def test_a_value_that_looks_like_a_template_is_only_text() -> None:
    assert render_field("text", "{{ webhook.id }}{% for x in y %}") == "{{ webhook.id }}{% for x in y %}"


def check_escaped(mode: Mode, value: str, out: str) -> None:
    if mode in ("json", "text"):
        assert out == value
    elif mode == "slack":
        assert "<" not in out and ">" not in out
        assert out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == value
    elif mode == "telegram_html":
        assert "<" not in out and ">" not in out
        assert html.unescape(out) == value
    elif mode == "telegram_markdown":
        assert all_escaped(out, MARKDOWN_V2)
        assert re.sub(r"\\(.)", r"\1", out, flags=re.DOTALL) == value
    elif mode == "discord":
        assert all_escaped(out.replace(ZWSP, ""), DISCORD)
        assert re.search(f"<(?!{ZWSP})", out) is None
        assert re.search("@(everyone|here)", out, re.IGNORECASE) is None
    else:
        assert all_escaped(out, TEAMS)


@settings(max_examples=60, deadline=None)
@given(value=st.text(max_size=200) | st.sampled_from([ATTACK, "@everyone", "<@&1>", "\\", "a\\*b", "&lt;"]))
def test_any_text_value_renders_and_is_escaped_in_every_mode(value: str) -> None:
    for mode in MODES:
        check_escaped(mode, value, render_field(mode, value))


SCALARS = st.one_of(st.text(max_size=30), st.integers(-(2**63), 2**63 - 1),
                    st.floats(allow_nan=False, allow_infinity=False), st.booleans())


@settings(max_examples=60, deadline=None)
@given(metadata=st.dictionaries(st.text(min_size=1, max_size=20), SCALARS, max_size=5),
       campaign=st.integers(-(2**63), 2**63 - 1) | st.text(max_size=50),
       smtp_code=st.integers(200, 599) | st.none())
def test_any_event_values_render_in_every_mode(
    metadata: dict[str, Any], campaign: Any, smtp_code: Any
) -> None:
    values = with_fields(metadata=metadata or None, campaign_id=campaign, smtp_code=smtp_code)
    source = ("{{ metadata }} {{ campaign_id }} {{ smtp_code }} {{ metadata | json }} "
              "{% for k, v in metadata | items %}{{ k }}={{ v }}{% endfor %} {{ campaign_id | int }}")
    for mode in MODES:
        compile_template(source, where=WHERE, mode=mode).render(values)
