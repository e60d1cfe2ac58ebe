"""Text that reaches a person: one line, and no control characters from hostile input."""

from __future__ import annotations

from typing import Final

# What stands where a secret would be: in logs, errors, previews and shown requests.
REDACTED: Final = "[redacted]"

# C0 controls, DEL, NEL and the Unicode line and paragraph separators: each would start
# a new line or move the cursor in a terminal, a log viewer or a CI annotation.
_VISIBLE: Final = {
    code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, 0x85)
} | {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x1B: "\\e", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def visible(text: str) -> str:
    """`text` with every control character written as an escape (`\\n`, `\\x1b`…), so
    what a file, an event or a receiver wrote cannot forge lines or recolour a terminal."""
    return text.translate(_VISIBLE)


def one_line(text: str, limit: int = 300) -> str:
    """Whitespace folded to single spaces, control characters escaped, at most `limit`
    characters (an ellipsis marks a cut)."""
    text = visible(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"
