"""What the chat channels share: default templates, cutting with a marker, digests."""

from __future__ import annotations

from typing import Any

import pytest

from mailhooks.channels import discord, slack, teams, telegram
from mailhooks.channels.chat import (
    DIGEST_LINES,
    MARKER,
    Markup,
    atoms,
    default_text,
    digest,
    truncate,
)
from mailhooks.events import EVENT_NAMES
from mailhooks.templates import Where, check, compile_template, sample_context

MARKUPS = [slack.MARKUP, teams.MARKUP, discord.MARKUP, *telegram.MARKUPS.values()]
PLAIN = Markup(mode="text", atoms=atoms())


@pytest.mark.parametrize("markup", MARKUPS, ids=lambda markup: markup.mode)
def test_default_templates_render_every_sample(markup: Markup) -> None:
    template = compile_template(default_text(markup), where=Where("default"), mode=markup.mode)
    assert check(template, EVENT_NAMES) == []
    text = template.render(sample_context("bounced"))
    assert text.startswith(markup.literal("[test] ") + markup.bold.format("bounced"))


def test_truncate_keeps_short_text_and_marks_a_cut() -> None:
    assert truncate("short", 10, PLAIN) == ("short", False)
    cut, was_cut = truncate("x" * 30, 20, PLAIN)
    assert was_cut and cut == "x" * (20 - len(MARKER)) + MARKER


def test_truncate_never_splits_an_atom() -> None:
    markup = Markup(mode="slack", atoms=atoms(r"&#?\w{1,10};"))
    text = "ab" + "&amp;" * 10
    cut, _ = truncate(text, len(MARKER) + 9, markup)
    assert cut == "ab&amp;" + MARKER


def lines_of(count: int, **fields: Any) -> list[dict[str, Any]]:
    return [{"event": "bounced", "email": f"r{n}@example.com", **fields} for n in range(count)]


def test_a_digest_counts_lists_and_says_how_many_more() -> None:
    events = [*lines_of(3), {"event": "complaint", "email": "c@example.com"}]
    found = digest(events, lambda event: f"{event['event']}\n  {event['email']}", PLAIN, 1000)
    assert found.title == "4 events: 3 bounced, 1 complaint"
    assert found.body == ("• bounced r0@example.com\n• bounced r1@example.com\n"
                          "• bounced r2@example.com\n• complaint c@example.com")


def test_a_digest_shows_what_fits() -> None:
    events = lines_of(500)
    found = digest(events, lambda event: event["email"], PLAIN, 120)
    text = found.text(PLAIN)
    assert len(text) <= 120
    assert text.endswith(f"… and {500 - text.count('•')} more")
    many = digest(events, lambda event: event["email"], PLAIN, 100_000)
    assert many.body.count("•") == DIGEST_LINES and many.body.endswith("… and 480 more")


def test_a_digest_cuts_a_long_line() -> None:
    found = digest(lines_of(2), lambda _event: "y" * 1000, PLAIN, 100_000)
    assert all(len(line) <= 302 and line.endswith(MARKER) for line in found.body.split("\n"))
