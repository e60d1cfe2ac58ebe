"""Secret grants (SPEC §2): a webhook file may name a secret only when the host's config
grants it to that webhook, and only for the destinations it lists.

In a GitOps tool the pull request is the interface: without grants, one merged file
could send every secret of every host to any URL. With `secrets.grants`, a reference not
granted to the webhook's id (or granted only for other origins) refuses the webhook, in
`validate --config` and at every load, with the config key to change.
"""

from __future__ import annotations

import os.path
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from mailhooks.channels.config import ChannelConfig, origin
from mailhooks.secrets import inside, references
from mailhooks.settings import Settings


@dataclass(frozen=True)
class Refusal:
    """A reference a webhook may not use: which, and why in one line (never a value)."""

    reference: str
    message: str


def scoped(settings: Settings) -> bool:
    return settings.secrets.grants is not None


def check(webhook_id: str, channel: ChannelConfig, settings: Settings) -> list[Refusal]:
    """Every reference of the channel that the config does not allow to this webhook."""
    refusals = []
    for reference in references(channel.secret_texts()):
        refusal = _file_outside_dirs(webhook_id, reference, settings) or _not_granted(
            webhook_id, reference, channel, settings
        )
        if refusal is not None:
            refusals.append(refusal)
    return refusals


def _file_outside_dirs(webhook_id: str, reference: str, settings: Settings) -> Refusal | None:
    dirs = settings.secrets.dirs
    if not dirs or not reference.startswith("${file:"):
        return None
    # As written (links are followed when the daemon reads the file): `..` cannot escape.
    path = Path(os.path.normpath(reference[len("${file:"):-1]))
    if inside(path, [Path(os.path.normpath(directory)) for directory in dirs]):
        return None
    return Refusal(reference, f"{webhook_id}: {reference} is not in a directory of secrets.dirs "
                              f"({', '.join(str(directory) for directory in dirs)})")


def _not_granted(
    webhook_id: str, reference: str, channel: ChannelConfig, settings: Settings
) -> Refusal | None:
    grants = settings.secrets.grants
    if grants is None:
        return None
    matching = [
        (index, grant) for index, grant in enumerate(grants)
        if reference in grant.secrets and any(fnmatchcase(webhook_id, glob) for glob in grant.webhooks)
    ]
    if not matching:
        return Refusal(reference, f"{webhook_id}: {reference} is not granted to this webhook "
                                  "(secrets.grants)")
    destinations = [origin(url) for url in channel.destinations(settings)]
    for _, grant in matching:
        if grant.destinations is None:
            return None
        allowed = {origin(url) for url in grant.destinations}
        # No destination known (a Teams workflow's host varies by tenant) is not "all allowed".
        if destinations and all(destination in allowed for destination in destinations):
            return None
    index, grant = matching[0]
    if not destinations:
        return Refusal(reference, f"{webhook_id}: {reference} goes where only the secret says, so "
                                  f"secrets.grants[{index}].destinations cannot allow it (set the "
                                  f"service's api_url in the config to name its origin)")
    elsewhere = [destination for destination in destinations
                 if destination not in {origin(url) for url in grant.destinations or []}]
    return Refusal(reference, f"{webhook_id}: {reference} may not be sent to {', '.join(elsewhere)} "
                              f"(secrets.grants[{index}].destinations)")
