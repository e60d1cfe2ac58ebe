"""Webhook ids: a file's path below the webhooks directory, without its extension."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

SUFFIXES: Final = (".yaml", ".yml")
# One part of an id: letters, digits, '.', '_' and '-', starting with a letter or digit,
# so an id works in URLs, metric labels and shells, and `..` can never be one.
ID_PART: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
ID_RULE: Final = (
    "path parts of letters, digits, '.', '_' and '-', each starting with a letter or digit"
)


class BadId(ValueError):
    """Text that is not a webhook id; the message says why."""


def webhook_id(relative: Path) -> str:
    """`crm/opens.yaml` → `crm/opens`."""
    return relative.with_suffix("").as_posix()


def is_candidate(name: str) -> bool:
    """A webhook file: *.yaml or *.yml, not hidden, not an editor's temporary file."""
    return (
        name.endswith(SUFFIXES)
        and not name.startswith((".", "#", "~"))
        and not name.endswith("~")
    )


def bad_part(relative: Path) -> str | None:
    """The first part of a file's path that cannot be part of an id, if any."""
    return next((part for part in relative.with_suffix("").parts if not ID_PART.match(part)), None)


def parse_id(text: str) -> str:
    """A webhook id as commands take it: `crm/opens`; a trailing .yaml/.yml is forgiven."""
    identifier = text.strip().strip("/")
    for suffix in SUFFIXES:
        identifier = identifier.removesuffix(suffix)
    parts = identifier.split("/")
    if not identifier or any(not ID_PART.match(part) for part in parts):
        raise BadId(f"{text!r} is not a webhook id: {ID_RULE} (crm/opens)")
    return identifier
