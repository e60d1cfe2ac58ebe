"""How a value is escaped in each mode, so an event field can only ever be text.

Only values are escaped: what `{{ … }}` writes. The template's own text is written as it
is, so it may hold the service's markup (`<https://x|link>`, `<b>`, `*bold*`). A string
written inside `{{ }}` is a value too: `{{ '<!here>' }}` is escaped.

- `json`, `text`: nothing. In `json` the caller puts the text into a JSON value, and
  escaping for JSON is the encoder's job; `text` is plain text (Pushover without html).
- `slack` (mrkdwn): `&`, `<`, `>` become `&amp;`, `&lt;`, `&gt;`, as Slack's "Escaping
  text" asks, so a value can open no link, mention (`<!channel>`, `<@U1>`) or date.
  Slack has no escape for `*_~`: a value can still make bold text, never a link.
- `telegram_html`: `&`, `<`, `>`, `"`, `'` as HTML entities (parse_mode HTML).
- `telegram_markdown` (MarkdownV2): a backslash before each of ``_*[]()~`>#+-=|{}.!`` and
  the backslash itself, as the Bot API requires of text outside entities.
- `discord`: a backslash before Discord's markdown characters (``\\*_~`|>#-[]()``), a
  zero-width space after every `<` (no `<@123>`, `<@&1>`, `<#1>`, `<t:…>` can form) and
  after the `@` of `@everyone` and `@here`. Send with `allowed_mentions: {"parse": []}`
  as well: that is Discord's own guarantee.
- `teams` (Adaptive Card TextBlock, a Markdown subset): a backslash before ``\\*_[]()~` ``
  and before a list marker at the start of a line (`\\-`, `\\+`, `1\\.`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, Literal, get_args

Mode = Literal["json", "text", "slack", "telegram_html", "telegram_markdown", "discord", "teams"]
MODES: Final[tuple[Mode, ...]] = get_args(Mode)

ZWSP: Final = "\u200b"


def _backslashed(characters: str) -> dict[int, str]:
    return {ord(character): "\\" + character for character in characters}


_SLACK: Final = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;"}
_HTML: Final = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord('"'): "&quot;", ord("'"): "&#39;"}
_MARKDOWN_V2: Final = _backslashed("\\_*[]()~`>#+-=|{}.!")
_DISCORD: Final = {**_backslashed("\\*_~`|>#-[]()"), ord("<"): "<" + ZWSP}
_DISCORD_MENTION: Final = re.compile(r"@(?=everyone|here)", re.IGNORECASE)
_TEAMS: Final = _backslashed("\\*_[]()~`")
_TEAMS_LIST: Final = re.compile(r"^(\s*)([-+]|\d+)(\.?)(?=\s|$)", re.MULTILINE)


def slack(text: str) -> str:
    return text.translate(_SLACK)


def telegram_html(text: str) -> str:
    return text.translate(_HTML)


def telegram_markdown(text: str) -> str:
    return text.translate(_MARKDOWN_V2)


def discord(text: str) -> str:
    text = text.translate(_DISCORD)
    return _DISCORD_MENTION.sub("@" + ZWSP, text) if "@" in text else text


def teams(text: str) -> str:
    return _TEAMS_LIST.sub(_teams_list_marker, text.translate(_TEAMS))


def _teams_list_marker(match: re.Match[str]) -> str:
    indent, marker, dot = match.groups()
    if dot:
        return f"{indent}{marker}\\."
    return f"{indent}\\{marker}" if not marker.isdigit() else match[0]


ESCAPES: Final[dict[Mode, Callable[[str], str] | None]] = {
    "json": None,
    "text": None,
    "slack": slack,
    "telegram_html": telegram_html,
    "telegram_markdown": telegram_markdown,
    "discord": discord,
    "teams": teams,
}
