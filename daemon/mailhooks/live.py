"""The webhooks running now: loaded, secrets resolved, senders built, matcher indexed.

A `LiveSet` is immutable; a reload builds a whole new one (every fallible step done) and
the daemon swaps one reference, so intake and dispatch never see half a reload.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from mailhooks.channels.base import ChannelKind, Sender
from mailhooks.channels.config import Batch, ChannelConfig
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.registry import build_sender, kind_of
from mailhooks.documents.positions import START, Position, Problem, find_text
from mailhooks.match import Matcher
from mailhooks.secrets import Resolved, SecretError, SecretSources, resolve_all
from mailhooks.settings import Settings
from mailhooks.webhooks.load import LoadedWebhook, LoadResult, apply_limit


@dataclass(frozen=True)
class LiveWebhook:
    id: str
    loaded: LoadedWebhook
    sender: Sender
    secrets: Resolved = field(default_factory=lambda: Resolved({}), repr=False)

    @property
    def channel(self) -> ChannelConfig:
        return self.loaded.webhook.channel

    @cached_property
    def kind(self) -> ChannelKind:
        return kind_of(self.loaded.webhook.channel)

    @cached_property
    def batching(self) -> Batch | None:
        return self.loaded.webhook.channel.batching()

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


class LiveRef:
    """The live set now: replaced whole by each reload, read by intake and the lanes."""

    def __init__(self) -> None:
        self.now = LiveSet()

    def webhook(self, webhook_id: str) -> LiveWebhook | None:
        return self.now.webhooks.get(webhook_id)


def _position_of(loaded: LoadedWebhook, text: str | None) -> Position:
    """Where `text` (a secret reference) first appears in the webhook's file."""
    try:
        return find_text(loaded.path.read_text(encoding="utf-8"), text or "")
    except (OSError, UnicodeDecodeError):
        return START


def build_one(
    loaded: LoadedWebhook, settings: Settings, context: ChannelContext, sources: SecretSources,
    previous: LiveWebhook | None = None,
) -> LiveWebhook:
    """One webhook made live: its secrets resolved, its sender built. `previous` (the
    version running) is kept as it is when neither the file nor its secrets changed, so
    a reload wakes only what changed. Raises SecretError or ValueError, whose messages
    name a reference, never its value."""
    secrets = resolve_all(loaded.webhook.channel.secret_texts(), sources)
    if previous is not None and previous.loaded.digest == loaded.digest and previous.secrets == secrets:
        return previous
    return LiveWebhook(loaded.id, loaded, build_sender(loaded.ref, loaded.webhook.channel, secrets, context),
                       secrets)


def problem_of(loaded: LoadedWebhook, error: SecretError | ValueError) -> Problem:
    """A webhook that cannot be made live, pointing at the reference it names."""
    where = _position_of(loaded, getattr(error, "reference", None))
    return Problem(str(loaded.path), where, f"{loaded.id}: {error}")


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
            webhooks[identifier] = build_one(loaded, settings, context, sources,
                                             previous.webhooks.get(identifier))
        except (SecretError, ValueError) as error:
            problems.append(problem_of(loaded, error))
            stale.add(identifier)
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
