"""Every way a secret value may be written in a request or an answer, and a mask that
replaces them all: for `preview` (what would be sent) and for a sender's scrub (what a
receiver echoed back, shown by the Test button and the log)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from yarl import URL

from mailhooks.text import REDACTED


def forms(value: str) -> set[str]:
    """The ways `value` may be written: as it is, trimmed, form- and percent-encoded,
    escaped inside a JSON string, and for a URL as a sender writes it (a default port
    dropped) and its path and query."""
    found: set[str] = set()
    for text in (value, value.strip()):
        found.update((text, quote_plus(text), quote(text, safe=""), json.dumps(text)[1:-1]))
    if "://" in value:
        for encoded in (True, False):
            try:
                url = URL(value.strip(), encoded=encoded)
            except ValueError:
                continue
            found.update((str(url), url.raw_path_qs if len(url.raw_path_qs) > 1 else ""))
    found.discard("")
    return found


class Mask:
    """Replaces every form of every secret value in one pass: each by its label
    (`[redacted]`, or what `labelled` gives)."""

    def __init__(self, secrets: Iterable[str], labelled: Iterable[tuple[Iterable[str], str]] = ()) -> None:
        shown: dict[str, str] = {}
        for values, label in (*labelled, (secrets, REDACTED)):
            for value in values:
                shown.update(dict.fromkeys(forms(value), label))
        self._shown = shown
        ordered = sorted(shown, key=len, reverse=True)  # the longest form of a value first
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda found: self._shown[found[0]], text)
