"""Deterministic event ids for events derived from a mail server's records.

The same record always gives the same `event_id`, so feeding a file, a journal range or
a DSN twice delivers nothing twice (the spool acknowledges a known `event_id` without
spooling it again).
"""

from __future__ import annotations

import hashlib

ID_DIGEST_CHARS = 32


def derive_event_id(source: str, *parts: object) -> str:
    """`source:` and 128 bits of SHA-256 over the parts that identify one event of a
    record (the record's own id, the recipient, the kind of event…): within SPEC §4's
    `event_id` alphabet and length."""
    # Each part followed by a separator; within a part, the separator and the escape
    # character are escaped, so no part's text can fake a boundary. (A part's type is not
    # written: 5 and "5", None and "None" give the same id, as they name the same thing.)
    text = "".join(f"{_escaped(part)}\x1f" for part in parts)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{source}:{digest[:ID_DIGEST_CHARS]}"


def _escaped(part: object) -> str:
    text = str(part)
    if "\x1f" in text or "\\" in text:  # rare: ids of every usual record stay as they were
        text = text.replace("\\", "\\\\").replace("\x1f", "\\x1f")
    return text
