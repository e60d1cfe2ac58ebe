"""Which webhooks an event goes to: the one place that decides, for the daemon and `explain`.

Webhooks are indexed by event name, so the cost of matching an event grows with the
webhooks that subscribe to that event, not with all of them; each filter is compiled to
sets (and a few networks) once, when the webhooks are loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, NamedTuple

from mailhooks.addresses import IPNetwork, parse_address, parse_network
from mailhooks.events import EVENT_NAMES, FILTER_FIELDS, Event
from mailhooks.webhooks.models import Filters, Webhook


def _normal_domain(domain: str) -> str:
    return domain.strip().rstrip(".").lower()


@lru_cache(maxsize=4096)
def _domain_suffixes(domain: str) -> tuple[str, ...]:
    """`a.b.example.org` → `.b.example.org`, `.example.org`, `.org`."""
    labels = _normal_domain(domain).split(".")
    return tuple("." + ".".join(labels[index:]) for index in range(1, len(labels)))


@dataclass(frozen=True, slots=True)
class _CompiledFilter:
    field: str
    exact: frozenset[str]
    suffixes: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    def accepts(self, value: str | None) -> bool:
        if value is None:
            return False
        if self.field == "sending_domain":
            domain = _normal_domain(value)
            return domain in self.exact or any(
                suffix in self.suffixes for suffix in _domain_suffixes(domain)
            )
        if self.field == "dedicated_ip":
            address = parse_address(value)
            return address is not None and (
                str(address) in self.exact or any(address in net for net in self.networks)
            )
        return value in self.exact


def _compile(filters: Filters | None) -> tuple[_CompiledFilter, ...]:
    if filters is None:
        return ()
    compiled = []
    for field in FILTER_FIELDS:
        values: list[str] | None = getattr(filters, field)
        if not values:
            continue
        if field == "sending_domain":
            domains = [_normal_domain(value) for value in values]
            compiled.append(_CompiledFilter(
                field,
                frozenset(d for d in domains if not d.startswith("*.")),
                frozenset(d[1:] for d in domains if d.startswith("*.")),
            ))
        elif field == "dedicated_ip":
            networks = [parse_network(value) for value in values]
            compiled.append(_CompiledFilter(
                field,
                frozenset(str(n.network_address) for n in networks if n.num_addresses == 1),
                networks=tuple(n for n in networks if n.num_addresses > 1),
            ))
        else:
            compiled.append(_CompiledFilter(field, frozenset(values)))
    return tuple(compiled)


@dataclass(frozen=True)
class Verdict:
    webhook_id: str
    name: str
    matched: bool
    reason: str | None = None


# The filter a webhook is indexed under, most selective first: an event then only looks
# at the webhooks filed under its own values, not at every webhook of its event type.
_INDEX_ORDER: Final = ("sending_domain", "bridge", "sending_node", "dedicated_ip")

# A webhook id and the filters an event found through the index still has to pass.
_Entry = tuple[str, tuple[_CompiledFilter, ...]]


class _Bucket(NamedTuple):
    """The webhooks filed under one key: those the key alone matches (ids, sorted) and
    those with filters left to check. Kept apart so that the usual event, which finds
    one bucket with nothing to check, reads one tuple of ids and nothing more: with
    100,000 webhooks each object an event touches is likely out of the CPU's caches.
    """

    plain: tuple[str, ...]
    checked: tuple[_Entry, ...]

    def matching(self, event: Event) -> tuple[str, ...]:
        """The ids here that `event` matches, sorted (a webhook is in a bucket once)."""
        if not self.checked:
            return self.plain
        passed = [key for key, rest in self.checked
                  if all(f.accepts(getattr(event, f.field)) for f in rest)]
        return tuple(sorted((*self.plain, *passed))) if passed else self.plain


def _bucket(entries: list[_Entry]) -> _Bucket:
    return _Bucket(tuple(sorted(key for key, rest in entries if not rest)),
                   tuple(entry for entry in entries if entry[1]))


class _EventIndex:
    """The webhooks of one event name: unfiltered ones, and the rest by a filter value.

    One plain dict per field (wildcard domains under `domain_suffix`), so a lookup hashes a
    string, and a field no webhook is filed under costs nothing.
    """

    def __init__(self, webhooks: list[_Entry]) -> None:
        unindexed: list[_Entry] = []
        filed: dict[str, dict[str, list[_Entry]]] = {}
        for webhook_id, filters in webhooks:
            key_filter = _index_filter(filters)
            if key_filter is None:
                unindexed.append((webhook_id, filters))
                continue
            # Finding the webhook under one of its own values already passes that filter,
            # so the entry keeps only the others: most webhooks then need no check at all.
            entry = (webhook_id, tuple(f for f in filters if f is not key_filter))
            for field, values in ((key_filter.field, key_filter.exact),
                                  ("domain_suffix", key_filter.suffixes)):
                for value in values:
                    filed.setdefault(field, {}).setdefault(value, []).append(entry)
        self.unindexed = _bucket(unindexed) if unindexed else None
        self.by_field = {field: {value: _bucket(entries) for value, entries in by_value.items()}
                         for field, by_value in filed.items()}

    def buckets(self, event: Event) -> list[_Bucket]:
        """The buckets `event` finds: only they can hold webhooks it matches."""
        found = [] if self.unindexed is None else [self.unindexed]
        by_field = self.by_field
        if not by_field:
            return found
        domain = event.sending_domain
        if domain is not None:
            normal = _normal_domain(domain)
            if "sending_domain" in by_field:
                _add(found, by_field["sending_domain"].get(normal))
            if "domain_suffix" in by_field:
                suffixes = by_field["domain_suffix"]
                for suffix in _domain_suffixes(normal):
                    _add(found, suffixes.get(suffix))
        for field in ("bridge", "sending_node"):
            value = getattr(event, field)
            if value is not None and field in by_field:
                _add(found, by_field[field].get(value))
        if event.dedicated_ip is not None and "dedicated_ip" in by_field:
            address = parse_address(event.dedicated_ip)
            if address is not None:
                _add(found, by_field["dedicated_ip"].get(str(address)))
        return found


def _add(found: list[_Bucket], bucket: _Bucket | None) -> None:
    if bucket is not None:
        found.append(bucket)


def _index_filter(filters: tuple[_CompiledFilter, ...]) -> _CompiledFilter | None:
    by_field = {compiled.field: compiled for compiled in filters}
    for field in _INDEX_ORDER:
        compiled = by_field.get(field)
        if compiled is not None and not compiled.networks:
            return compiled
    return None


class Matcher:
    """An immutable index of webhooks; build a new one on every reload."""

    def __init__(self, webhooks: Mapping[str, Webhook]) -> None:
        self._webhooks = dict(sorted(webhooks.items()))
        self._filters = {key: _compile(hook.filters) for key, hook in self._webhooks.items()}
        subscribed: dict[str, list[_Entry]] = {name: [] for name in EVENT_NAMES}
        for key, hook in self._webhooks.items():
            if hook.active:
                for name in EVENT_NAMES if hook.events == "all" else hook.events:
                    subscribed[name].append((key, self._filters[key]))
        self._by_event = {name: _EventIndex(hooks) for name, hooks in subscribed.items()}

    def __len__(self) -> int:
        return len(self._webhooks)

    def match(self, event: Event) -> tuple[str, ...]:
        """The ids of the active webhooks `event` goes to, in id order."""
        found = self._by_event[event.event].buckets(event)
        if len(found) == 1:
            return found[0].matching(event)
        matched: set[str] = set()
        for bucket in found:  # a webhook may be in several: under a domain and its wildcards
            matched.update(bucket.matching(event))
        return tuple(sorted(matched))

    def explain(self, event: Event) -> list[Verdict]:
        """For every webhook, active or not: matched, or the first reason it did not."""
        verdicts = []
        for key, hook in self._webhooks.items():
            verdicts.append(Verdict(key, hook.name, *self._why(event, hook, self._filters[key])))
        return verdicts

    @staticmethod
    def _why(
        event: Event, hook: Webhook, filters: tuple[_CompiledFilter, ...]
    ) -> tuple[bool, str | None]:
        if not hook.active:
            return False, "inactive"
        if hook.events != "all" and event.event not in hook.events:
            return False, f"event {event.event!r} not selected (selects {', '.join(hook.events)})"
        for compiled in filters:
            value = getattr(event, compiled.field)
            if value is None:
                return False, f"filter {compiled.field}: the event has no {compiled.field}"
            if not compiled.accepts(value):
                allowed = getattr(hook.filters, compiled.field)
                return False, (
                    f"filter {compiled.field}: {value!r} is not one of {', '.join(allowed)}"
                )
        return True, None
