"""The webhooks running now: loaded, secrets resolved, senders built, matcher indexed.

A `LiveSet` is immutable; a reload builds a whole new one (every fallible step done) and
the daemon swaps one reference, so intake and dispatch never see half a reload.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from mailhooks.channels.base import ChannelContext, Sender
from mailhooks.channels.registry import build_sender
from mailhooks.match import Matcher
from mailhooks.settings import Settings
from mailhooks.webhooks.load import LoadedWebhook, LoadResult, Problem, apply_limit
from mailhooks.webhooks.models import secret_texts
from mailhooks.webhooks.secrets import Resolved, SecretError, SecretSources, resolve_all
from mailhooks.webhooks.yaml import START, Position


@dataclass(frozen=True)
class LiveWebhook:
    id: str
    loaded: LoadedWebhook
    sender: Sender
    secrets: Resolved = field(default_factory=lambda: Resolved({}), repr=False)

    @property
    def retry_schedule(self) -> list[float] | None:
        return self.loaded.webhook.channel.retry_schedule


@dataclass(frozen=True)
class LiveSet:
    webhooks: Mapping[str, LiveWebhook] = field(default_factory=dict)
    matcher: Matcher = field(default_factory=lambda: Matcher({}))
    problems: tuple[Problem, ...] = ()
    # Ids whose current file is refused; the version running (if any) is the last good one.
    stale: frozenset[str] = frozenset()
    loaded_at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return not self.problems


def _position_of(loaded: LoadedWebhook, text: str | None) -> Position:
    """Where `text` (a secret reference) first appears in the webhook's file."""
    if not text:
        return START
    try:
        content = loaded.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return START
    offset = content.find(text)
    if offset < 0:
        return START
    line_start = content.rfind("\n", 0, offset) + 1
    return Position(content.count("\n", 0, offset) + 1, offset - line_start + 1)


def build(
    result: LoadResult,
    previous: LiveSet,
    settings: Settings,
    context: ChannelContext,
    sources: SecretSources,
) -> LiveSet:
    """The next live set: new valid files replace old versions; a refused file keeps its
    last good version; a webhook beyond the limit is refused unless it was running."""
    result = apply_limit(result, settings.limits.max_webhooks, frozenset(previous.webhooks))
    problems = list(result.problems)
    stale = set(result.failed_ids)
    webhooks: dict[str, LiveWebhook] = {}
    for identifier, loaded in result.webhooks.items():
        try:
            secrets = resolve_all(secret_texts(loaded.webhook.channel), sources)
            kept = previous.webhooks.get(identifier)
            if kept is not None and kept.loaded.digest == loaded.digest and kept.secrets == secrets:
                # Unchanged file and secrets: keep the running webhook (and its lane's
                # state), so a reload wakes only what changed.
                webhooks[identifier] = kept
                continue
            sender = build_sender(identifier, loaded.webhook, secrets, context)
        except (SecretError, ValueError) as error:
            # Messages name the reference, never its value.
            where = _position_of(loaded, getattr(error, "reference", None))
            problems.append(Problem(str(loaded.path), where, f"{identifier}: {error}"))
            stale.add(identifier)
            continue
        webhooks[identifier] = LiveWebhook(identifier, loaded, sender, secrets)
    for identifier in stale:
        kept = previous.webhooks.get(identifier)
        if kept is not None and identifier not in webhooks:
            webhooks[identifier] = kept
    webhooks = dict(sorted(webhooks.items()))
    return LiveSet(
        webhooks,
        Matcher({key: live.loaded.webhook for key, live in webhooks.items()}),
        tuple(problems),
        frozenset(stale),
    )
