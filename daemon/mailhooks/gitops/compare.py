"""BASE and HEAD compared: webhooks added, removed, renamed and changed field by field;
which events newly reach which destination and which stop; and every secret reference
newly sent to a destination. The result is data (`gitops.model.Diff`); nothing here prints.

What a webhook sends where: its destinations (`channel.destinations(settings)`, the
origins its requests and so its secrets go to; the channel's service when it has none,
as a Teams workflow without `teams.api_url`), the events it selects, its filters, and
whether it is active. A renamed file is compared as the webhook it was (its flows did not
change), though its id did.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final

from mailhooks import grants
from mailhooks.channels.config import without_query
from mailhooks.documents.positions import START, PathPart, Position, dotted, find_text
from mailhooks.documents.yaml import Document, YamlError, parse
from mailhooks.events import EVENT_NAMES, FILTER_FIELDS, EventName
from mailhooks.gitops.filters import narrowed, widened
from mailhooks.gitops.model import (
    Added,
    Because,
    Change,
    Changed,
    Diff,
    Effect,
    FieldChange,
    HeadError,
    Removed,
    Renamed,
    SecretSent,
    Side,
    StatusChange,
)
from mailhooks.gitops.snapshot import Entry, Snapshot
from mailhooks.secrets import references
from mailhooks.settings import Settings
from mailhooks.webhooks.models import Webhook

CHANGE_ORDER: Final[tuple[Change, ...]] = ("starts", "may start", "stops", "may stop")
FILTER_WORDS: Final = {
    "sending_domain": "from", "sending_node": "on node", "bridge": "via bridge",
    "dedicated_ip": "from IP",
}


def destinations(webhook: Webhook, settings: Settings) -> list[str]:
    """Where the webhook's requests (and its secrets) go."""
    return list(dict.fromkeys(webhook.channel.destinations(settings))) or [webhook.channel.endpoint()]


def selected(webhook: Webhook) -> tuple[EventName, ...]:
    """The events the webhook selects, in the order the SPEC lists them."""
    if webhook.events == "all":
        return EVENT_NAMES
    return tuple(name for name in EVENT_NAMES if name in webhook.events)


def filters_text(webhook: Webhook) -> str | None:
    """`from *.example.org; on node smtp1`: the webhook's filters for people."""
    if webhook.filters is None:
        return None
    parts = [f"{FILTER_WORDS[name]} {', '.join(values)}" for name in FILTER_FIELDS
             if (values := getattr(webhook.filters, name))]
    return "; ".join(parts) or None


def shown_url(value: Any) -> Any:
    """A URL without what may carry a secret (user info, query string, fragment)."""
    if not isinstance(value, str) or not value.lower().startswith(("http://", "https://")):
        return value
    try:
        return without_query(value)
    except ValueError:
        return "(a URL that cannot be shown)"


class _Positions:
    """Lines in a HEAD file, parsed once and only when asked."""

    def __init__(self, entry: Entry) -> None:
        self._entry = entry
        self._document: Document | None = None

    def at(self, path: tuple[PathPart, ...], *, key: bool = False) -> Position:
        if self._document is None:
            try:
                self._document = parse(self._entry.text)
            except YamlError:
                return START
        return self._document.position(path, key=key)

    def of_text(self, needle: str) -> Position:
        return find_text(self._entry.text, needle)


def _dump(webhook: Webhook) -> dict[str, Any]:
    # The channel is typed by its registered class: dumped as itself, not as the base.
    data = webhook.model_dump(mode="json", exclude_none=True, exclude={"channel"})
    data["channel"] = webhook.channel.model_dump(mode="json", exclude_none=True)
    return data


def _leaves(value: Any, path: tuple[PathPart, ...] = ()) -> Iterator[tuple[tuple[PathPart, ...], Any]]:
    """Every scalar or list of a document by its path; a mapping is walked into."""
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            yield from _leaves(inner, (*path, key))
    else:
        yield path, value


def field_changes(old: Webhook, new: Webhook, positions: _Positions) -> list[FieldChange]:
    """The fields that differ, with old and new values (URLs without their query)."""
    before, after = dict(_leaves(_dump(old))), dict(_leaves(_dump(new)))
    changes = []
    for path in dict.fromkeys([*before, *after]):
        if path in before and path in after and before[path] == after[path]:
            continue
        was, now = shown_url(before.get(path)), shown_url(after.get(path))
        if was == now and was is not None:
            now = f"{now} (query string changed)"
        changes.append(FieldChange(field=dotted(path), old=was, new=now, line=positions.at(path).line))
    return sorted(changes, key=lambda change: change.line)


Flow = tuple[EventName, str]


def _flows(webhook: Webhook, settings: Settings) -> set[Flow]:
    if not webhook.active:
        return set()
    return {(event, destination) for destination in destinations(webhook, settings)
            for event in selected(webhook)}


def _grouped(flows: Iterable[Flow]) -> dict[str, list[EventName]]:
    by_destination: dict[str, list[EventName]] = {}
    for event, destination in sorted(flows, key=lambda flow: (flow[1], EVENT_NAMES.index(flow[0]))):
        by_destination.setdefault(destination, []).append(event)
    return by_destination


class _Comparison:
    def __init__(self, base: Snapshot, head: Snapshot, settings: Settings) -> None:
        self.base, self.head, self.settings = base, head, settings
        self.positions = {key: _Positions(entry) for key, entry in head.entries.items()}
        removed = sorted(set(base.entries) - set(head.entries))
        added = sorted(set(head.entries) - set(base.entries))
        by_digest = {head.entries[key].digest: key for key in added}
        # A file moved with its content: the same webhook under a new id.
        self.renamed_to = {key: by_digest.pop(base.entries[key].digest) for key in removed
                           if base.entries[key].digest in by_digest}
        self.removed = [key for key in removed if key not in self.renamed_to]
        still_added = set(by_digest.values())
        self.added = [key for key in added if key in still_added]
        # BASE's webhooks under the ids they have in HEAD.
        self.before = {self.renamed_to.get(key, key): entry for key, entry in base.entries.items()}

    def line(self, key: str, path: tuple[PathPart, ...]) -> int:
        """The line of a top-level key (`events:`, `channel:`, `status:`) in HEAD's file."""
        return self.positions[key].at(path, key=True).line

    def diff(self) -> Diff:
        return Diff(
            base=_side(self.base), head=_side(self.head),
            secrets_newly_sent=self.secrets(), errors=self.errors(),
            added=self.added_webhooks(), removed=[
                Removed(id=key, name=self.base.entries[key].webhook.name, file=self.base.entries[key].file)
                for key in self.removed
            ],
            renamed=[
                Renamed(old_id=old, new_id=new, old_file=self.base.entries[old].file,
                        new_file=self.head.entries[new].file, name=self.head.entries[new].webhook.name)
                for old, new in sorted(self.renamed_to.items(), key=lambda pair: pair[1])
            ],
            changed=self.changed(), status_changes=self.status_changes(), effects=self.effects(),
        )

    def added_webhooks(self) -> list[Added]:
        removed_names = {self.base.entries[key].webhook.name.casefold(): key for key in self.removed}
        found = []
        for key in self.added:
            entry = self.head.entries[key]
            hook = entry.webhook
            found.append(Added(
                id=key, name=hook.name, file=entry.file, status=hook.status,
                events="all" if hook.events == "all" else list(selected(hook)),
                endpoint=hook.channel.endpoint(), similar_to=removed_names.get(hook.name.casefold()),
            ))
        return found

    def changed(self) -> list[Changed]:
        found = []
        for key, entry in sorted(self.head.entries.items()):
            before = self.before.get(key)
            if before is None or before.digest == entry.digest:
                continue
            changes = field_changes(before.webhook, entry.webhook, self.positions[key])
            if changes:  # else only comments or layout changed
                found.append(Changed(id=key, name=entry.webhook.name, file=entry.file, changes=changes))
        return found

    def status_changes(self) -> list[StatusChange]:
        return [
            StatusChange(webhook=key, file=entry.file, line=self.line(key, ("status",)),
                         status=entry.webhook.status)
            for key, entry in sorted(self.head.entries.items())
            if key in self.before and self.before[key].webhook.active != entry.webhook.active
        ]

    def effects(self) -> list[Effect]:
        found: list[Effect] = []
        for key in sorted(set(self.before) | set(self.head.entries)):
            old = self.before.get(key)
            new = self.head.entries.get(key)
            old_flows = _flows(old.webhook, self.settings) if old else set()
            new_flows = _flows(new.webhook, self.settings) if new else set()
            old_places = {destination for _, destination in old_flows}
            for destination, events in _grouped(new_flows - old_flows).items():
                assert new is not None
                because: Because = ("added" if old is None else
                                    "active again" if not old.webhook.active else "changed")
                path = (("status",) if because == "active again" else
                        ("channel",) if destination not in old_places else ("events",))
                found.append(Effect(
                    change="starts", destination=destination, events=events, webhook=key,
                    file=new.file, line=self.line(key, path), because=because,
                    filters=filters_text(new.webhook),
                ))
            for destination, events in _grouped(old_flows - new_flows).items():
                assert old is not None
                because = ("removed" if new is None else
                           "turned inactive" if not new.webhook.active else "changed")
                found.append(Effect(
                    change="stops", destination=destination, events=events, webhook=key,
                    file=new.file if new else old.file,
                    line=self.line(key, ("status",) if because == "turned inactive" else ("events",))
                    if new else None,
                    because=because, filters=filters_text(old.webhook),
                ))
            if old is not None and new is not None:
                found += self.filter_effects(key, old, new, old_flows & new_flows)
        return sorted(found, key=lambda effect: (CHANGE_ORDER.index(effect.change),
                                                 effect.destination, effect.webhook))

    def filter_effects(self, key: str, old: Entry, new: Entry, kept: set[Flow]) -> list[Effect]:
        """Events that reach a destination before and after, through filters that widened
        (some may newly reach it) or narrowed (some may stop)."""
        found = []
        for change, because, fields in (
            ("may start", "filters widened", widened(old.webhook.filters, new.webhook.filters)),
            ("may stop", "filters narrowed", narrowed(old.webhook.filters, new.webhook.filters)),
        ):
            if not fields:
                continue
            for destination, events in _grouped(kept).items():
                found.append(Effect(
                    change=change, destination=destination, events=events, webhook=key,
                    file=new.file, line=self.line(key, ("filters",)), because=because,
                    filters=filters_text(new.webhook), filters_changed=fields,
                ))
        return found

    def _refusals(self, entry: Entry) -> dict[str, str]:
        return {refusal.reference: refusal.message
                for refusal in grants.check(entry.id, entry.webhook.channel, self.settings)}

    def secrets(self) -> list[SecretSent]:
        """Every (reference, destination) of HEAD that BASE did not send: from an active
        webhook when no active one sent it before; from an inactive one (sent once it is
        activated) when no webhook at all had it before."""
        sent_before: set[tuple[str, str]] = set()
        known_before: set[tuple[str, str]] = set()
        for entry in self.base.entries.values():
            pairs = set(self._pairs(entry))
            known_before |= pairs
            if entry.webhook.active:
                sent_before |= pairs
        found = []
        for key, entry in sorted(self.head.entries.items()):
            active = entry.webhook.active
            refusals = self._refusals(entry)
            for reference, destination in self._pairs(entry):
                if (reference, destination) in (sent_before if active else known_before):
                    continue
                found.append(SecretSent(
                    reference=reference, destination=destination, webhook=key, file=entry.file,
                    line=self.positions[key].of_text(reference).line, active=active,
                    refused=refusals.get(reference),
                ))
        return sorted(found, key=lambda sent: (sent.refused is None, not sent.active,
                                               sent.destination, sent.reference, sent.webhook))

    def _pairs(self, entry: Entry) -> Iterator[tuple[str, str]]:
        places = destinations(entry.webhook, self.settings)
        for reference in references(entry.webhook.channel.secret_texts()):
            for destination in places:
                yield reference, destination

    def errors(self) -> list[HeadError]:
        found = [HeadError(file=problem.file, line=problem.position.line,
                           column=problem.position.column, message=problem.message)
                 for problem in self.head.problems]
        for key, entry in self.head.entries.items():
            for reference, message in self._refusals(entry).items():
                where = self.positions[key].of_text(reference)
                found.append(HeadError(file=entry.file, line=where.line, column=where.column,
                                       message=message))
        limit = self.settings.limits.max_webhooks
        if len(self.head.entries) > limit:
            found.append(HeadError(
                file=self.head.directory, line=1, column=1,
                message=f"{len(self.head.entries)} webhooks, the limit is {limit} "
                        "(limits.max_webhooks in the config)",
            ))
        return sorted(found, key=lambda error: (error.file, error.line, error.column, error.message))


def _side(snapshot: Snapshot) -> Side:
    return Side(given=snapshot.given, kind=snapshot.kind, commit=snapshot.commit,
                directory=snapshot.directory, webhooks=len(snapshot.entries),
                invalid_files=len({problem.file for problem in snapshot.problems}))


def compare(base: Snapshot, head: Snapshot, settings: Settings) -> Diff:
    """What changing BASE into HEAD does; `settings` gives the destinations of channels
    whose service is configured, and the grants HEAD is checked against."""
    return _Comparison(base, head, settings).diff()
