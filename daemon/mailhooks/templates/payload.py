"""A web channel's `payload`: a YAML mapping whose string leaves are templates.

`render` gives a JSON-ready value, so the body is always valid JSON whatever the event
holds. Keys are plain strings; numbers, booleans and null stay as they are; a string
without `{{`, `{%` or `{#` is itself. A string leaf that is a template renders as text
(mode `json`: not escaped, the JSON encoder does that), except a leaf that is one
expression and nothing else (whitespace aside), which keeps a type:

- `{{ name }}`: the variable's own value. `campaign_id` 123 stays a number, `metadata`
  an object, `events` a list of objects, `timestamp` its ISO 8601 text; **a field the
  event lacks is null**: a typed receiver gets "no value", not an empty string.
- `{{ expression | int }}`, `| float`, `| bool`: a JSON number or boolean; a value the
  filter cannot convert (a missing field too) gives the filter's default: 0, 0.0,
  false, or its argument (`| int(-1)`).

In any other mode (Slack's `blocks`: the payload is a chat message) every value is
escaped for its service: `{{ name }}` alone is text like any other, and a typed leaf
whose default is text has that text escaped, so no event field can ping or link.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from jinja2 import Template as JinjaTemplate
from jinja2 import nodes

from mailhooks.templates.compiler import Template, build, failure, failure_message, parse
from mailhooks.templates.errors import TemplateError, Where
from mailhooks.templates.escaping import ESCAPES, Mode
from mailhooks.templates.filters import TYPED_FILTERS
from mailhooks.templates.limits import DEFAULT_LIMITS, Budget, LimitError, Limits, enter, leave
from mailhooks.templates.sandbox import SandboxEnvironment
from mailhooks.templates.values import VARIABLES, Variables, json_value

PathPart = str | int
Path = tuple[PathPart, ...]
Positions = Callable[[Path], Where]
_MARKERS: Final = ("{{", "{%", "{#")
_NO_BLOCKS: Final[dict[str, Any]] = {}


class _Leaf:
    """One part of a payload. `render` runs with the payload's budget as the current one;
    it returns the value and how many characters of text it wrote."""

    def render(self, variables: Variables, budget: Budget) -> tuple[Any, int]:
        raise NotImplementedError


class _Constant(_Leaf):
    def __init__(self, value: Any) -> None:
        self.value = value

    def render(self, variables: Variables, budget: Budget) -> tuple[Any, int]:
        return self.value, 0


class _Text(_Leaf):
    def __init__(self, template: Template) -> None:
        self.template = template

    def render(self, variables: Variables, budget: Budget) -> tuple[Any, int]:
        text = self.template.render_within(variables, budget)
        return text, len(text)


class _Variable(_Leaf):
    def __init__(self, name: str) -> None:
        self.name = name

    def render(self, variables: Variables, budget: Budget) -> tuple[Any, int]:
        return json_value(variables[self.name]), 0


class _Typed(_Leaf):
    """`{{ expression | int }}` and the like, evaluated to the filter's own value."""

    def __init__(self, jinja: JinjaTemplate, where: Where, escape: Callable[[str], str] | None) -> None:
        self.jinja = jinja
        self.where = where
        self.escape = escape

    def render(self, variables: Variables, budget: Budget) -> tuple[Any, int]:
        env = self.jinja.environment
        context = env.context_class(env, variables, None, _NO_BLOCKS, None)
        try:
            for _ in self.jinja.root_render_func(context):
                pass
        except Exception as error:
            raise failure(error, self.jinja, self.where) from None
        return _typed(context.vars["result"], self.where, self.escape), 0


def _typed(result: Any, where: Where, escape: Callable[[str], str] | None) -> Any:
    """A typed leaf's filter result as it goes into the JSON."""
    value = json_value(result)
    if not (value is None or isinstance(value, bool | int | str)
            or (isinstance(value, float) and math.isfinite(value))):
        raise where.error("a typed value must be a number, a boolean, text or null; "
                          f"this default gives a {type(value).__name__}")
    if isinstance(value, str) and escape is not None:
        value = escape(value)  # a default taken from an event's field is a value too
    return value


class _Simple(_Leaf):
    """A leaf of text and variables, each variable alone or through one filter without
    arguments (`{{ node }} via {{ domain }}`, `{{ email | domain }}`, typed:
    `{{ smtp_code | int }}`): the same values through the same filters and `finalize` as
    Jinja's render, without building its context (most of a payload's cost)."""

    def __init__(self, parts: list[tuple[bool, str, Callable[[Any], Any] | None, int]], typed: bool,
                 finalize: Callable[[Any], str], escape: Callable[[str], str] | None,
                 where: Where) -> None:
        self.parts = parts  # (is a variable, its name or the text, its filter, its line)
        self.typed = typed
        self.finalize = finalize
        self.escape = escape
        self.where = where

    def render(self, variables: Variables, budget: Budget) -> tuple[Any, int]:
        line = 1
        try:
            if self.typed:
                _, name, function, line = self.parts[0]
                assert function is not None
                return _typed(function(variables[name]), self.where, self.escape), 0
            texts = []
            size, limit = 0, budget.limits.size
            for is_variable, item, function, at in self.parts:
                if is_variable:
                    line = at  # where an error is said to be
                    value = variables[item]
                    item = self.finalize(function(value) if function is not None else value)
                size += len(item)
                if size > limit:
                    raise LimitError(f"the text is longer than {limit} characters")
                texts.append(item)
        except TemplateError:
            raise
        except Exception as error:
            raise self.where.error(failure_message(error), line) from None
        text = "".join(texts)
        return text, len(text)


class _Object(_Leaf):
    def __init__(self, items: list[tuple[str, _Leaf]]) -> None:
        self.items = items

    def render(self, variables: Variables, budget: Budget) -> tuple[Any, int]:
        result = {}
        written = 0
        for key, leaf in self.items:
            result[key], size = leaf.render(variables, budget)
            written += size
        return result, written


class _Array(_Leaf):
    def __init__(self, items: list[_Leaf]) -> None:
        self.items = items

    def render(self, variables: Variables, budget: Budget) -> tuple[Any, int]:
        result = []
        written = 0
        for leaf in self.items:
            value, size = leaf.render(variables, budget)
            result.append(value)
            written += size
        return result, written


class PayloadTemplate:
    """A compiled payload: `render(variables)` gives a JSON-ready value."""

    def __init__(self, root: _Leaf, where: Where, limits: Limits) -> None:
        self._root = root
        self.where = where
        self.limits = limits

    def render(self, variables: Variables) -> Any:
        """The payload for `variables`; the text of all its leaves together is at most
        `limits.size` characters, written within `limits.time`."""
        budget = Budget(self.limits)
        previous = enter(budget)
        try:
            value, written = self._root.render(variables, budget)
        finally:
            leave(previous)
        if written > self.limits.size:
            raise self.where.error(f"limit: the payload's text is longer than {self.limits.size} characters")
        return value


def _leaf(source: str, where: Where, mode: Mode, limits: Limits) -> _Leaf:
    if not any(marker in source for marker in _MARKERS):
        return _Constant(source)
    env, tree = parse(source, where, mode)
    expression = _single_expression(tree)
    if isinstance(expression, nodes.Name) and expression.name in VARIABLES and mode == "json":
        return _Variable(expression.name)
    simple = _simple(env, tree, expression, where)
    if simple is not None:
        return simple
    if isinstance(expression, nodes.Filter) and expression.name in TYPED_FILTERS:
        assign = nodes.Assign(nodes.Name("result", "store"), expression)
        typed = nodes.Template([assign])
        typed.set_lineno(expression.lineno)
        return _Typed(build(env, typed, where), where, ESCAPES[mode])
    return _Text(Template(source, where, mode, limits, env, build(env, tree, where)))


def _simple(env: SandboxEnvironment, tree: nodes.Template, expression: nodes.Expr | None,
            where: Where) -> _Simple | None:
    """The leaf as a `_Simple` when it is only text and variables, each alone or through
    one filter that takes no argument and nothing from Jinja; else None (Jinja renders it)."""
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    output = tree.body[0]
    parts: list[tuple[bool, str, Callable[[Any], Any] | None, int]] = []
    for node in output.nodes:
        if isinstance(node, nodes.TemplateData):
            parts.append((False, node.data, None, node.lineno))
            continue
        function: Callable[[Any], Any] | None = None
        variable: nodes.Node | None = node
        if isinstance(node, nodes.Filter):
            function = env.filters.get(node.name)
            if (function is None or getattr(function, "jinja_pass_arg", None) is not None
                    or node.args or node.kwargs or node.dyn_args or node.dyn_kwargs):
                return None
            variable = node.node
        if not isinstance(variable, nodes.Name) or variable.name not in VARIABLES:
            return None
        parts.append((True, variable.name, function, node.lineno))
    typed = isinstance(expression, nodes.Filter) and expression.name in TYPED_FILTERS
    if typed and (len(parts) != 1 or parts[0][2] is None):
        return None
    assert env.finalize is not None  # the sandbox always sets one: it escapes and counts
    return _Simple(parts, typed, env.finalize, ESCAPES[env.mode], where)


def _single_expression(tree: nodes.Template) -> nodes.Expr | None:
    """The expression of a template that is `{{ expression }}` and nothing else."""
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    parts = [part for part in tree.body[0].nodes
             if not (isinstance(part, nodes.TemplateData) and not part.data.strip())]
    if len(parts) != 1 or isinstance(parts[0], nodes.TemplateData):
        return None
    return parts[0]


def _compile(value: Any, path: Path, positions: Positions, mode: Mode, limits: Limits) -> _Leaf:
    if isinstance(value, str):
        return _leaf(value, positions(path), mode, limits)
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise positions((*path, key)).error(f"a payload key must be a string, not {key!r}")
            items.append((key, _compile(item, (*path, key), positions, mode, limits)))
        return _Object(items)
    if isinstance(value, list | tuple):
        return _Array([_compile(item, (*path, index), positions, mode, limits)
                       for index, item in enumerate(value)])
    if value is None or isinstance(value, bool | int):
        return _Constant(value)
    if isinstance(value, float) and math.isfinite(value):
        return _Constant(value)
    raise positions(path).error(f"a payload value must be text, a number, a boolean or null, not {value!r}")


def compile_payload(
    mapping: Any, *, positions: Positions, mode: Mode = "json", limits: Limits = DEFAULT_LIMITS
) -> PayloadTemplate:
    """Compiles a payload. `positions(path)` is where the value at `path` (keys and list
    indexes from the payload's root; `()` for the payload itself) sits in the file."""
    if not isinstance(mapping, Mapping):
        raise positions(()).error("a payload must be a mapping")
    return PayloadTemplate(_compile(mapping, (), positions, mode, limits), positions(()), limits)

