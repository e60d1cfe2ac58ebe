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
    digest = hashlib.sha256()
    for part in parts:
        digest.update(str(part).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")  # a separator no part can fake by its own text
    return f"{source}:{digest.hexdigest()[:ID_DIGEST_CHARS]}"
