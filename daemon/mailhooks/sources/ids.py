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
    # Each part followed by a separator no part can fake by its own text.
    text = "".join(f"{part}\x1f" for part in parts)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{source}:{digest[:ID_DIGEST_CHARS]}"
