"""The environment templates run in: Jinja's ImmutableSandboxedEnvironment, narrowed.

The sandbox already refuses `_`-attributes and wraps `str.format`; this one goes further:
attributes are an allow-list (a few read-only methods of str, dict, list and tuple,
`loop`'s, and the keys of records), only those methods, macros, `loop()` and `range()`
can be called, the only global is a bounded `range` (no cycler, joiner, lipsum,
namespace, dict), there is no loader (no include, import, extends), and every value goes
through `finalize`, which escapes it for the mode. Jinja's `autoescape` is off: it can
only HTML-escape, and `finalize` sees exactly the values and never the template's text
(a macro's or a `{% set %}` block's text, escaped inside already, comes as `Rendered`).

The code generator is Jinja's, with four changes so every unbounded step is bounded
(see limits.py): a `for` loop iterates through `limited_iter` (deadline), `~` through
`join_values` (size), comparisons through `compare_values` (containers are measured
before Python compares them recursively), and slices through `getslice` (counted).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from types import BuiltinMethodType, MethodType
from typing import Any, Final

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mailhooks.templates.escaping import ESCAPES, Mode
from mailhooks.templates.filters import FILTERS, TESTS
from mailhooks.templates.limits import (
    MAX_DEPTH,
    MAX_INT_BITS,
    Budget,
    LimitError,
    bounded_range,
    current,
    materialize,
    measure,
    size_of,
)
from mailhooks.templates.values import Record, to_text

_SIZED_STR_METHODS: Final = frozenset({"center", "join", "ljust", "replace", "rjust", "zfill"})
_ATTRIBUTES: Final[dict[type, frozenset[str]]] = {
    str: frozenset({
        "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha",
        "isascii", "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle",
        "isupper", "lower", "lstrip", "partition", "removeprefix", "removesuffix", "rfind",
        "rindex", "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith",
        "strip", "swapcase", "title", "upper",
    }) | _SIZED_STR_METHODS,
    dict: frozenset({"get", "items", "keys", "values"}),
    list: frozenset({"count", "index"}),
    tuple: frozenset({"count", "index"}),
}
_LOOP_ATTRIBUTES: Final = frozenset({
    "changed", "cycle", "depth", "depth0", "first", "index", "index0", "last", "length",
    "nextitem", "previtem", "revindex", "revindex0",
})
_LOOP_METHODS: Final = frozenset({"changed", "cycle"})
_CONTAINERS: Final = (list, tuple, dict)
_COMPARE: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "lteq": operator.le,
    "gt": operator.gt, "gteq": operator.ge,
    "in": lambda left, right: left in right, "notin": lambda left, right: left not in right,
}


def _within(size: int, budget: Budget) -> None:
    if size > budget.max_work:
        raise LimitError(f"a value of {size} characters is over the limit of {budget.max_work}")


class StrMethod:
    """A str method that can make a long string, checked before it does."""

    __slots__ = ("name", "text")

    def __init__(self, text: str, name: str) -> None:
        self.text = text
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        budget = current()
        if self.name == "join":
            items = materialize(iter(args[0])) if args else []
            if all(type(item) is str for item in items):
                _within(sum(map(len, items)) + len(self.text) * max(len(items) - 1, 0), budget)
            args = (items, *args[1:])
        elif self.name == "replace" and len(args) >= 2 and isinstance(args[0], str):
            old, new = args[0], args[1] if isinstance(args[1], str) else ""
            count = args[2] if len(args) > 2 and isinstance(args[2], int) else kwargs.get("count", -1)
            times = self.text.count(old) if old else len(self.text) + 1
            if isinstance(count, int) and count >= 0:
                times = min(times, count)
            _within(len(self.text) + times * (len(new) - len(old)), budget)
        elif self.name != "replace":  # center, ljust, rjust, zfill: a width first
            width = args[0] if args else kwargs.get("width", 0)
            if isinstance(width, int):
                _within(width, budget)
        return getattr(self.text, self.name)(*args, **kwargs)


def bounded_concat(parts: Iterable[str]) -> str:
    """Joins the text of a macro, a `{% set %}` block or a `{% filter %}` block."""
    if type(parts) is not list:
        parts = list(parts)
    current().spend(sum(map(len, parts)))
    return "".join(parts)


def limited(iterable: nodes.Expr) -> nodes.Expr:
    """A `for` loop's iterable, iterated through `environment.limited_iter` (an
    EnvironmentAttribute: Jinja's way for extensions to call the environment)."""
    call = nodes.Call(nodes.EnvironmentAttribute("limited_iter"), [iterable], [], None, None)
    call.set_lineno(iterable.lineno)
    return call


class _Generator(CodeGenerator):
    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.join_values((")
        for item in node.nodes:
            self.visit(item, frame)
            self.write(", ")
        self.write("))")

    @optimizeconst
    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        if len(node.ops) == 1:
            self.write(f"environment.compare_values({node.ops[0].op!r}, ")
            self.visit(node.expr, frame)
            self.write(", ")
            self.visit(node.ops[0].expr, frame)
            self.write(")")
            return
        self.write("environment.compare_chain(")
        self.visit(node.expr, frame)
        for operand in node.ops:
            self.write(f", ({operand.op!r}, ")
            self.visit(operand.expr, frame)
            self.write(")")
        self.write(")")

    @optimizeconst
    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self.write("environment.getslice(")
        self.visit(node.node, frame)
        for part in (node.arg.start, node.arg.stop, node.arg.step):
            self.write(", ")
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
        self.write(")")


class Rendered(str):
    """The text of a macro or a `{% set %}` block: the template's own text with its values
    escaped already, so writing it escapes nothing again (no event value becomes one:
    every str operation on it gives a plain str)."""

    __slots__ = ()


def _finalize(escape: Callable[[str], str] | None) -> Callable[[Any], str]:
    """Turns every value a template writes into escaped text, and counts it."""
    if escape is None:
        def finalize(value: Any) -> str:
            budget = current()
            text = value if type(value) is str else to_text(value, budget.max_work)
            budget.spend(len(text))
            return text
        return finalize

    def finalize_escaped(value: Any) -> str:
        budget = current()
        kind = type(value)
        text = value if kind is str or kind is Rendered else to_text(value, budget.max_work)
        budget.spend(len(text))
        return text if kind is Rendered else escape(text)

    return finalize_escaped


class SandboxEnvironment(ImmutableSandboxedEnvironment):
    """The environment of one escaping mode. Shared by every template of that mode."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _Generator

    def __init__(self, mode: Mode) -> None:
        super().__init__(
            autoescape=False, undefined=StrictUndefined, finalize=_finalize(ESCAPES[mode]),
            auto_reload=False, cache_size=0,
        )
        self.mode = mode
        self.filters = dict(FILTERS)
        self.tests = dict(TESTS)
        self.globals.clear()
        self.globals["range"] = bounded_range
        self.policies["truncate.leeway"] = 0

    def concat(self, parts: Iterable[str]) -> str:
        """Joins the text of a macro, a `{% set %}` block or a `{% filter %}` block."""
        return Rendered(bounded_concat(parts))

    # -- what a template may read

    def getattr(self, obj: Any, attribute: str) -> Any:
        kind = type(obj)
        if kind is Record:
            return obj.lookup(attribute)
        if attribute.startswith("_"):
            raise SecurityError(f"attribute {attribute!r} is not available in templates")
        if isinstance(obj, Undefined):
            return getattr(obj, attribute)
        allowed = _ATTRIBUTES.get(kind)
        if allowed is not None and attribute in allowed:
            if kind is str and attribute in _SIZED_STR_METHODS:
                return StrMethod(obj, attribute)
            return getattr(obj, attribute)
        if (kind is LoopContext and attribute in _LOOP_ATTRIBUTES) or (
            isinstance(obj, tuple) and attribute in getattr(kind, "_fields", ())
        ):
            return getattr(obj, attribute)
        if kind is dict and attribute in obj:
            return obj[attribute]
        return self.undefined(obj=obj, name=attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        kind = type(obj)
        if kind is Record:
            return obj.lookup(argument)
        if isinstance(obj, Undefined):
            return obj[argument]
        if kind is str or kind is list or kind is dict or kind is range or isinstance(obj, tuple):
            if isinstance(argument, _CONTAINERS):
                measure(argument)
            try:
                return obj[argument]
            except (TypeError, LookupError):
                pass
        if isinstance(argument, str):
            return self.getattr(obj, argument)
        return self.undefined(obj=obj, name=argument)

    def getslice(self, obj: Any, start: Any, stop: Any, step: Any) -> Any:
        if isinstance(obj, Undefined):
            return obj[slice(start, stop, step)]
        if not isinstance(obj, str | list | tuple | range):
            raise TypeError(f"a {type(obj).__name__} cannot be sliced")
        result = obj[start:stop:step]
        current().spend(size_of(result))
        return result

    # -- what a template may do

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = current()
        budget.tick()
        kind = type(obj)
        if kind is Macro or kind is LoopContext:
            budget.depth += 1
            try:
                if budget.depth > MAX_DEPTH:
                    raise LimitError(f"macros or recursive loops nested deeper than {MAX_DEPTH}")
                result = context.call(obj, *args, **kwargs)
            finally:
                budget.depth -= 1
        elif self._may_call(obj):
            if not (kind is MethodType and obj.__self__ is self):  # limited_iter measures nothing
                for value in args:
                    if isinstance(value, _CONTAINERS):
                        measure(value)
            result = context.call(obj, *args, **kwargs)
        elif isinstance(obj, Undefined):
            return obj(*args, **kwargs)
        else:
            raise SecurityError(f"a {kind.__name__} cannot be called in a template")
        budget.spend(size_of(result))
        return result

    def _may_call(self, obj: Any) -> bool:
        kind = type(obj)
        if obj is bounded_range or kind is StrMethod:
            return True
        if kind is MethodType and obj.__self__ is self:
            return bool(obj.__name__ == "limited_iter")
        if kind is BuiltinMethodType:
            allowed = _ATTRIBUTES.get(type(obj.__self__))
            return allowed is not None and obj.__name__ in allowed
        return kind is MethodType and type(obj.__self__) is LoopContext and obj.__name__ in _LOOP_METHODS

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = current()
        budget.tick()
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, str | list | tuple) and isinstance(times, int):
                    _within(len(sequence) * max(times, 0), budget)
            if isinstance(left, int) and isinstance(right, int) and (
                left.bit_length() + right.bit_length() > MAX_INT_BITS
            ):
                raise LimitError(f"a number of more than {MAX_INT_BITS} bits")
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1 and (
                left.bit_length() * right > MAX_INT_BITS
            ):
                raise LimitError(f"a number of more than {MAX_INT_BITS} bits")
        elif operator == "%" and isinstance(left, str):
            raise SecurityError("'%' formatting of text is not available: use ~ and filters")
        result = self.binop_table[operator](left, right)
        budget.spend(size_of(result))
        return result

    def compare_values(self, operator: str, left: Any, right: Any) -> Any:
        if isinstance(left, _CONTAINERS) and (operator in ("in", "notin") or isinstance(right, _CONTAINERS)):
            current().tick()
            measure(left)
            if isinstance(right, _CONTAINERS):
                measure(right)
        return _COMPARE[operator](left, right)

    def compare_chain(self, first: Any, *operations: tuple[str, Any]) -> bool:
        left = first
        for operator_name, right in operations:
            if not self.compare_values(operator_name, left, right):
                return False
            left = right
        return True

    def join_values(self, values: tuple[Any, ...]) -> str:
        budget = current()
        texts = [to_text(value, budget.max_work) for value in values]
        budget.spend(sum(map(len, texts)))
        return "".join(texts)

    def limited_iter(self, values: Any) -> Iterator[Any]:
        budget = current()
        for value in values:
            budget.tick()
            yield value


_environments: dict[Mode, SandboxEnvironment] = {}


def environment(mode: Mode) -> SandboxEnvironment:
    """The one environment of `mode`, made on first use."""
    found = _environments.get(mode)
    if found is None:
        if mode not in ESCAPES:
            raise ValueError(f"unknown template mode {mode!r}; the modes are {', '.join(ESCAPES)}")
        found = _environments.setdefault(mode, SandboxEnvironment(mode))
    return found
