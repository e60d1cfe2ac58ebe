"""The filters and tests a template may use: a short list, each bounded (see limits.py).

Jinja's own, unchanged: abs, capitalize, count, d, default, dictsort, first, groupby,
items, last, length, list, lower, map, max, min, reject, rejectattr, reverse, round,
select, selectattr, sort, title, trim, truncate (without leeway: `truncate(20)` gives at
most 20 characters, "..." included), unique, upper. Jinja's, bounded: join, replace,
string, sum (numbers), urlencode. Ours:

- `datetime(format="%Y-%m-%d %H:%M %Z", zone="UTC")`: an ISO 8601 timestamp (or unix
  seconds) in a time zone: `{{ timestamp | datetime("%d.%m.%Y %H:%M", "Europe/Berlin") }}`.
  An unknown zone is an error (at compile time when it is written in the template).
- `domain`: the part of an address after its last `@`, lowercased; "" for no address.
- `int(default=0, base=10)`, `float(default=0.0)`, `bool(default=False)`: a number or
  a boolean, or the default when the value is none (a missing field, `"abc"`, `"inf"`).
  `bool` knows true/false, yes/no, on/off, 1/0. In a payload, a leaf that is one
  expression ending in one of these is a JSON number or boolean.
- `json`: the value as compact JSON text (records as their data, missing as null).

Left out on purpose: `format` and `%` on strings (format-string attacks and unbounded
widths), `attr` (a way around attribute checks), `safe`/`escape`/`forceescape` (each mode
escapes), `center`, `indent`, `wordwrap`, `batch`, `slice` (they multiply sizes), `random`,
`pprint`, `urlize`, `xmlattr`, `tojson` (use `json`).
"""

from __future__ import annotations

import functools
import math
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any, Final, cast
from zoneinfo import ZoneInfo, available_timezones

from jinja2 import Environment, Undefined, pass_environment
from jinja2 import filters as jinja_filters
from jinja2.filters import make_attrgetter
from jinja2.runtime import LoopContext
from jinja2.tests import TESTS as JINJA_TESTS

from mailhooks.templates.limits import (
    LimitError,
    current,
    materialize,
    measure,
    size_of,
)
from mailhooks.templates.values import Record, dumps, to_text

DEFAULT_DATETIME_FORMAT: Final = "%Y-%m-%d %H:%M %Z"
MAX_FORMAT: Final = 200
_TRUE: Final = frozenset({"true", "yes", "on", "1"})
_FALSE: Final = frozenset({"false", "no", "off", "0", ""})

Filter = Callable[..., Any]


def _argument_index(function: Filter) -> int:
    """Where a filter's value is among its arguments: after the environment or context
    Jinja passes to some filters."""
    return 1 if getattr(function, "jinja_pass_arg", None) is not None else 0


def traversable(value: Any) -> Any:
    """`value` made safe to compare, hash or sort: an iterator becomes a list, and a
    container must hold at most MAX_NODES elements counted with repetition."""
    if isinstance(value, Iterator) and not isinstance(value, LoopContext):
        value = materialize(value)
    if isinstance(value, list | tuple | dict):
        measure(value)
    return value


def guarded(function: Filter, *, textual: bool = False, traverse: bool = False) -> Filter:
    """A filter that checks the deadline, counts what it makes, and first turns its value
    into text (`textual`) or checks it can be walked (`traverse`)."""
    index = _argument_index(function)

    @functools.wraps(function)
    def guard(*args: Any, **kwargs: Any) -> Any:
        budget = current()
        budget.tick()
        if (textual or traverse) and len(args) > index:
            value = args[index]
            if textual and type(value) is not str:
                value = to_text(value, budget.max_work)
            elif traverse:
                value = traversable(value)
            args = (*args[:index], value, *args[index + 1 :])
        result = function(*args, **kwargs)
        budget.spend(size_of(result))
        return result

    return guard


def guarded_test(function: Filter) -> Filter:
    index = _argument_index(function)

    @functools.wraps(function)
    def guard(*args: Any, **kwargs: Any) -> Any:
        current().tick()
        for value in args[index:]:
            if isinstance(value, list | tuple | dict):
                measure(value)
        return function(*args, **kwargs)

    return guard


def to_int(value: Any, default: Any = 0, base: int = 10) -> Any:
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else default
    if isinstance(value, str):
        try:
            return int(value, base)
        except ValueError:
            number = to_float(value, None)
            return default if number is None else int(number)
    return default


def to_float(value: Any, default: Any = 0.0) -> Any:
    if isinstance(value, bool | int | float | str):
        try:
            number = float(value)
        except (ValueError, OverflowError):
            return default
        return number if math.isfinite(number) else default
    return default


def to_bool(value: Any, default: Any = False) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return default


def to_json(value: Any) -> str:
    if isinstance(value, Undefined) or value is None:
        str(value)  # a StrictUndefined raises its error
        return "null"
    budget = current()
    if isinstance(value, Iterator) and not isinstance(value, LoopContext):
        value = materialize(value)
    measure(value, budget.max_work, lambda item: item.size if type(item) is Record else 8)
    return dumps(value)


@functools.cache
def zones() -> frozenset[str]:
    """The IANA zone names (reading them takes tens of milliseconds: the compiler asks
    first, so no render pays for it)."""
    return frozenset(available_timezones()) | {"UTC"}


@functools.lru_cache(maxsize=64)
def time_zone(name: str) -> tzinfo:
    """A time zone of the IANA database; only names it has (no file is read for another)."""
    if name == "UTC":
        return UTC
    if name not in zones():
        raise ValueError(f"unknown time zone {name!r}")
    return ZoneInfo(name)


def to_datetime(value: Any, format: str = DEFAULT_DATETIME_FORMAT, zone: str = "UTC") -> Any:
    if isinstance(value, Undefined) or value is None:
        return value
    if not isinstance(format, str) or len(format) > MAX_FORMAT:
        raise ValueError(f"datetime: the format must be text of at most {MAX_FORMAT} characters")
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"datetime: {value[:40]!r} is not an ISO 8601 timestamp") from None
    else:
        raise ValueError(f"datetime: cannot read a {type(value).__name__} as a time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _strftime(moment.astimezone(time_zone(str(zone))), format)


def _strftime(moment: datetime, format: str) -> str:
    """`strftime`, with `%s` (unix seconds) taken from the moment itself: the C library's
    `%s` reads the fields as local time, so it was off by the host's UTC offset."""
    if "%s" not in format:
        return moment.strftime(format)
    seconds = str(int(moment.timestamp()))
    # "%%" is a literal percent, read left to right as C does: "%%s" stays the text "%s".
    return "%".join(moment.strftime(part.replace("%s", seconds)) for part in format.split("%%"))


def to_domain(value: Any) -> Any:
    if isinstance(value, Undefined):
        return value
    text = to_text(value, current().max_work)
    _, at, domain = text.rpartition("@")
    return domain.lower() if at else ""


def _texts(values: Any, environment: Environment, attribute: str | int | None) -> list[str]:
    if isinstance(values, Undefined):
        str(values)  # a StrictUndefined raises its error
        return []
    items = materialize(iter(values))
    if attribute is not None:
        items = list(map(make_attrgetter(environment, attribute), items))
    budget = current()
    return [to_text(item, budget.max_work) for item in items]


def _within(size: int) -> None:
    budget = current()
    if size > budget.max_work:
        raise LimitError(f"a value of {size} characters is over the limit of {budget.max_work}")


@pass_environment
def join(environment: Environment, values: Any, d: Any = "", attribute: str | int | None = None) -> str:
    texts = _texts(values, environment, attribute)
    separator = to_text(d, current().max_work)
    _within(sum(map(len, texts)) + len(separator) * max(len(texts) - 1, 0))
    return separator.join(texts)


def replace(value: str, old: Any, new: Any, count: int | None = None) -> str:
    limit = current().max_work
    old, new = to_text(old, limit), to_text(new, limit)
    times = value.count(old) if old else len(value) + 1
    if count is not None and count >= 0:
        times = min(times, count)
    _within(len(value) + times * (len(new) - len(old)))
    return value.replace(old, new, -1 if count is None else count)


def string(value: Any) -> str:
    return to_text(value, current().max_work)


@pass_environment
def total(environment: Environment, values: Any, attribute: str | int | None = None, start: Any = 0) -> Any:
    items = materialize(iter(values))
    if attribute is not None:
        items = list(map(make_attrgetter(environment, attribute), items))
    result = start
    for item in items:
        if not isinstance(item, int | float) or not isinstance(result, int | float):
            raise TypeError("sum: only numbers can be added")
        result += item
    return result


def urlencode(value: Any) -> str:
    limit = current().max_work
    if isinstance(value, Mapping):
        pairs = [(to_text(key, limit), to_text(item, limit)) for key, item in value.items()]
        return "&".join(f"{urllib.parse.quote(key, safe='')}={urllib.parse.quote(item, safe='')}"
                        for key, item in pairs)
    return urllib.parse.quote(to_text(value, limit), safe="/")


def _filters() -> dict[str, Filter]:
    plain = ("abs", "default", "d", "first", "items", "last", "length", "count", "list", "map",
             "reject", "rejectattr", "reverse", "round", "select", "selectattr")
    textual = ("capitalize", "lower", "title", "trim", "truncate", "upper")
    walked = ("dictsort", "groupby", "max", "min", "sort", "unique")
    table: dict[str, Filter] = {}
    for name in plain:
        table[name] = guarded(jinja_filters.FILTERS[name])
    for name in textual:
        table[name] = guarded(jinja_filters.FILTERS[name], textual=True)
    for name in walked:
        table[name] = guarded(jinja_filters.FILTERS[name], traverse=True)
    ours: dict[str, tuple[Filter, bool]] = {
        "bool": (to_bool, False), "datetime": (to_datetime, False), "domain": (to_domain, False),
        "float": (to_float, False), "int": (to_int, False), "join": (join, False),
        "json": (to_json, False), "replace": (replace, True), "string": (string, False),
        "sum": (total, False), "urlencode": (urlencode, False),
    }
    for name, (function, is_textual) in ours.items():
        table[name] = guarded(function, textual=is_textual)
    return dict(sorted(table.items()))


FILTERS: Final = _filters()
TESTS: Final = {name: guarded_test(cast(Filter, test)) for name, test in JINJA_TESTS.items()}
TYPED_FILTERS: Final = frozenset({"int", "float", "bool"})
