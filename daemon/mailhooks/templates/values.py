"""The variables a template sees, and how a value becomes text.

Every Event field is a variable. A field the event lacks is `Missing`: it renders as "",
is false, `is defined` is false, `| default(x)` replaces it, and `.anything` on it is
Missing again; arithmetic or a comparison with it is an error, which `check()` finds with
its sample event that lacks every optional field. `metadata`, `webhook` and each of
`events` are `Record`s: `metadata.campaign` is the key's value, or Missing when the event
has no such key (metadata is free-form); `webhook.url` or `events[0].emial`, names that
can never exist, are errors. `metadata.items` is the key `items`: iterate with
`metadata | items`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

from jinja2 import ChainableUndefined, StrictUndefined, Undefined
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext

from mailhooks.events import Event
from mailhooks.templates.limits import bounded_range, materialize, measure

Variables = dict[str, Any]

EVENT_FIELDS: Final = tuple(Event.model_fields)
_FIELD_SET: Final = frozenset(EVENT_FIELDS)
_WEBHOOK_FIELDS: Final = frozenset({"id", "name"})
VARIABLES: Final = frozenset({*EVENT_FIELDS, "webhook", "events", "count"})


class Missing(ChainableUndefined):
    """A field or metadata key the event does not have."""

    __slots__ = ()


_missing: dict[str, Missing] = {}


def missing(label: str) -> Missing:
    found = _missing.get(label)
    if found is None:
        found = Missing(f"{label!r} is missing from this event", name=label)
        if len(_missing) < 1000:
            _missing[label] = found
    return found


_ALL_MISSING: Final = {name: missing(name) for name in EVENT_FIELDS}


class Record(Mapping[str, Any]):
    """Event data a template reads by key: an event, its metadata, the webhook.

    `known` are the keys it may have (None: any, as in metadata); a known key it lacks is
    Missing, any other an error."""

    __slots__ = ("_known", "_label", "_size", "_values", "raw")

    def __init__(
        self, values: dict[str, Any], raw: Mapping[str, Any], known: frozenset[str] | None, label: str
    ) -> None:
        self._values = values
        self.raw = raw
        self._known = known
        self._label = label
        self._size = -1

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<{self._label}>"

    def lookup(self, key: Any) -> Any:
        """`record.key` and `record["key"]` in a template."""
        try:
            return self._values[key]
        except (KeyError, TypeError):
            pass
        if isinstance(key, str):
            if key.startswith("__"):
                raise SecurityError(f"{key!r} is not available in templates")
            if self._known is None or key in self._known:
                return missing(f"{self._label}.{key}")
            return StrictUndefined(f"{self._label} has no field {key!r}", obj=self, name=key)
        return StrictUndefined(f"{self._label} has no field {key!r}", obj=self)

    @property
    def size(self) -> int:
        """About as many characters as its JSON text."""
        if self._size < 0:
            self._size = len(json.dumps(self.raw, ensure_ascii=False, default=str))
        return self._size


def _record_size(value: Any) -> int:
    return value.size if type(value) is Record else 8


def _metadata(value: Any, label: str) -> Any:
    if isinstance(value, Mapping):
        return Record(dict(value), value, None, label)
    return value


def _fields(payload: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(_ALL_MISSING)
    for key, value in payload.items():
        if key in _FIELD_SET and value is not None:
            values[key] = _metadata(value, "metadata") if key == "metadata" else value
    return values


def _payload(event: Event | Mapping[str, Any]) -> Mapping[str, Any]:
    return event.payload() if isinstance(event, Event) else event


def _webhook(webhook_id: str, webhook_name: str) -> Record:
    data = {"id": webhook_id, "name": webhook_name}
    return Record(data, data, _WEBHOOK_FIELDS, "webhook")


def event_variables(event: Event | Mapping[str, Any], *, webhook_id: str, webhook_name: str) -> Variables:
    """The variables for one event: its fields, `webhook`, `events` (this one) and `count` (1).

    `event` is an Event or its payload (`Event.payload()`, what receivers get)."""
    payload = _payload(event)
    fields = _fields(payload)
    variables = dict(fields)
    variables["webhook"] = _webhook(webhook_id, webhook_name)
    variables["events"] = [Record(fields, payload, _FIELD_SET, "event")]
    variables["count"] = 1
    variables["range"] = bounded_range
    return variables


def batch_variables(
    events: Sequence[Event | Mapping[str, Any]], *, webhook_id: str, webhook_name: str,
    payloads: bool = False,
) -> Variables:
    """The variables for a batch: `events` (each a record of its fields), `count`,
    `webhook`; the event fields themselves are missing (a batch is not one event). With
    `payloads`, each of `events` is a webhook's own payload for its event, rendered: any
    key it has is read, any other is missing."""
    records = []
    for event in events:
        if payloads:
            assert isinstance(event, Mapping)
            records.append(Record(dict(event), event, None, "event"))
            continue
        payload = _payload(event)
        records.append(Record(_fields(payload), payload, _FIELD_SET, "event"))
    variables: Variables = dict(_ALL_MISSING)
    variables["webhook"] = _webhook(webhook_id, webhook_name)
    variables["events"] = records
    variables["count"] = len(records)
    variables["range"] = bounded_range
    return variables


def _json_default(value: Any) -> Any:
    if type(value) is Record:
        return value.raw
    if isinstance(value, Missing):
        return None
    if isinstance(value, Undefined):
        str(value)  # a StrictUndefined raises its error
    if isinstance(value, range):
        return list(value)
    raise TypeError(f"cannot write a {type(value).__name__} as text")


def dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def to_text(value: Any, max_chars: int) -> str:
    """A value as a template writes it: strings as they are, numbers as in JSON,
    true/false, "" for none and missing, records and containers as compact JSON."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return str(value)
    if value is None:
        return ""
    if isinstance(value, Undefined):
        return str(value)
    if isinstance(value, str):
        return str.__str__(value)
    if kind is Record or kind is list or kind is tuple or kind is dict:
        measure(value, max_chars, _record_size)
        return dumps(value)
    if isinstance(value, LoopContext) or not isinstance(value, Iterable):
        raise TypeError(f"cannot write a {type(value).__name__} as text")
    items: Any = dict(value) if isinstance(value, Mapping) else materialize(iter(value))
    measure(items, max_chars, _record_size)
    return dumps(items)


def json_value(value: Any) -> Any:
    """A variable's value as JSON: records as their data, missing as null."""
    kind = type(value)
    if kind is Record:
        return value.raw
    if kind is list:
        return [json_value(item) for item in value]
    if isinstance(value, Undefined):
        return None
    return value
