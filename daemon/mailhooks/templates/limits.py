"""What one render may spend: time, output, and the values the template makes on the way.

Jinja's sandbox keeps a template away from Python's internals but not from the machine's
time and memory: `{{ 'x' * 10**9 }}` is a safe attribute-free expression. Every place a
template can make something big or slow goes through this module:

- **time**: a deadline (`Limits.time`, 50 ms by default) checked between steps: at every
  loop iteration, filter, test, call, binary operator, comparison of containers and
  output value. No timer signal: the daemon renders on its event loop, off the main
  thread too. One step is bounded by the sizes below, so it cannot run long past it.
- **output**: the rendered text is at most `Limits.size` characters (64 KiB by default).
- **work**: every string or list the template makes (operators, `~`, filters, method
  calls, slices, macro and `{% set %}` bodies, output values) is counted; one value, and
  their total over a render, is at most `Limits.work` (16 x size). Memory stays near that
  however the values are kept, shared or nested.
- **fixed**: `range()` makes at most `MAX_RANGE` numbers, integers stay under
  `MAX_INT_BITS` bits, macros and recursive loops nest at most `MAX_DEPTH` deep, and a
  container is compared, sorted or written out only when it has at most `MAX_NODES`
  elements counted with repetition (`[a, a]` where `a = [b, b]`... cannot explode).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from time import perf_counter
from typing import Any, Final

DEFAULT_TIME: Final = 0.05
DEFAULT_SIZE: Final = 64 * 1024
WORK_FACTOR: Final = 16
MAX_RANGE: Final = 10_000
MAX_INT_BITS: Final = 1024
MAX_DEPTH: Final = 50
MAX_NODES: Final = 65_536


class LimitError(Exception):
    """A render went past one of its limits."""


@dataclass(frozen=True)
class Limits:
    """A render's limits: `time` in seconds, `size` in characters of output."""

    time: float = DEFAULT_TIME
    size: int = DEFAULT_SIZE

    @property
    def work(self) -> int:
        return self.size * WORK_FACTOR


DEFAULT_LIMITS: Final = Limits()


class Budget:
    """What one render has spent so far. One per render; found through `current()`."""

    __slots__ = ("deadline", "depth", "limits", "max_work", "work")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.deadline = perf_counter() + limits.time
        self.max_work = limits.work
        self.work = 0
        self.depth = 0

    def tick(self) -> None:
        if perf_counter() > self.deadline:
            raise LimitError(f"rendering took longer than {self.limits.time * 1000:g} ms")

    def spend(self, size: int) -> None:
        """Count a value of `size` characters (or elements) the template made."""
        if size > self.max_work:
            raise LimitError(f"a value of {size} characters is over the limit of {self.max_work}")
        self.work += size
        if self.work > self.max_work:
            raise LimitError(f"the template made more than {self.max_work} characters")
        self.tick()


class _Idle(Budget):
    """Outside a render (Jinja folds constants while compiling): sizes are still bounded,
    nothing is counted and there is no deadline."""

    __slots__ = ()

    def tick(self) -> None:
        pass

    def spend(self, size: int) -> None:
        if size > self.max_work:
            raise LimitError(f"a value of {size} characters is over the limit of {self.max_work}")


class _Current(threading.local):
    budget: Budget = _Idle(DEFAULT_LIMITS)


_current = _Current()


def current() -> Budget:
    return _current.budget


def enter(budget: Budget) -> Budget:
    """Make `budget` the current one; returns the previous one, for `leave`."""
    previous = _current.budget
    _current.budget = budget
    return previous


def leave(previous: Budget) -> None:
    _current.budget = previous


def size_of(value: Any) -> int:
    """What making `value` costs: its length when it is a string or a container."""
    return len(value) if isinstance(value, str | list | tuple | dict) else 0


def bounded_range(*args: int) -> range:
    """`range()`, of at most MAX_RANGE numbers."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise LimitError(f"range() of more than {MAX_RANGE} numbers")
    return numbers


def materialize(values: Iterator[Any]) -> list[Any]:
    """An iterator's values as a list, of at most MAX_NODES."""
    items = list(islice(values, MAX_NODES + 1))
    if len(items) > MAX_NODES:
        raise LimitError(f"more than {MAX_NODES} values in one sequence")
    return items


def measure(value: Any, max_chars: int | None = None, leaf_size: Any = None) -> int:
    """Walk a value the template may have built, counting its elements with repetition
    (at most MAX_NODES) and, with `max_chars`, the characters its text would take.

    Stops as soon as a count is over, so the walk costs at most MAX_NODES steps even for
    a list that holds the same list twice, at every level. `leaf_size(value)` sizes the
    values that are not strings, numbers or containers (records of event data)."""
    nodes = chars = 0
    stack = [value]
    while stack:
        item = stack.pop()
        nodes += 1
        kind = type(item)
        if kind is str:
            chars += len(item)
        elif kind is int:
            chars += item.bit_length() // 3 + 1
        elif kind is list or kind is tuple or isinstance(item, tuple):
            nodes += len(item)
            if nodes > MAX_NODES:
                break
            stack.extend(item)
        elif kind is dict:
            nodes += 2 * len(item)
            if nodes > MAX_NODES:
                break
            stack.extend(item.keys())
            stack.extend(item.values())
        elif leaf_size is not None:
            chars += leaf_size(item)
        else:
            chars += 8
        if nodes > MAX_NODES or (max_chars is not None and chars > max_chars):
            break
    if nodes > MAX_NODES:
        raise LimitError(f"a value of more than {MAX_NODES} elements (counted with repetition)")
    if max_chars is not None and chars > max_chars:
        raise LimitError(f"a value of more than {max_chars} characters")
    return chars
