"""Compile once, render per delivery: the checks a template passes before it runs.

`compile_template` parses, refuses what is not available (include, import, extends,
block, autoescape; attributes starting with `_`; unknown filters and tests; a literal
time zone that does not exist; a name that is no variable), each at its `path:line:col`,
and compiles with the sandboxed environment of its mode. `Template.render` then costs
one call into the compiled code, the budget and the checks of limits.py.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Final, cast

from jinja2 import Template as JinjaTemplate
from jinja2 import TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError

from mailhooks.templates.errors import TemplateError, Where
from mailhooks.templates.escaping import Mode
from mailhooks.templates.filters import MAX_FORMAT, time_zone, zones
from mailhooks.templates.limits import DEFAULT_LIMITS, Budget, LimitError, Limits, enter, leave
from mailhooks.templates.sandbox import SandboxEnvironment, environment, limited
from mailhooks.templates.values import VARIABLES, Variables, to_text

_UNAVAILABLE: Final[dict[type[nodes.Node], tuple[str, str]]] = {
    nodes.Extends: ("extends", "templates cannot read other files"),
    nodes.Include: ("include", "templates cannot read other files"),
    nodes.Import: ("import", "templates cannot read other files"),
    nodes.FromImport: ("from", "templates cannot read other files"),
    nodes.Block: ("block", "there is no template to inherit from"),
    nodes.ScopedEvalContextModifier: ("autoescape", "each mode escapes its values"),
    nodes.EvalContextModifier: ("autoescape", "each mode escapes its values"),
}
_NO_BLOCKS: Final[dict[str, Any]] = {}
_NEWLINE: Final = re.compile(r"\r\n|\r|\n")
_DELIMITER: Final = re.compile(r"\{\{|\{%|\}\}|%\}")
_QUOTED: Final = re.compile(r"'[^']*'|\"[^\"]*\"")

Problem = tuple[int, int, str]  # line in the template, offset in that line, message


def _regions(text: str) -> Iterator[tuple[int, int]]:
    """The parts of one line that are inside `{{ }}` or `{% %}`."""
    start: int | None = None
    for delimiter in _DELIMITER.finditer(text):
        if delimiter[0] in ("{{", "{%"):
            start = delimiter.start()
        else:
            yield (0 if start is None else start), delimiter.end()
            start = None
    if start is not None:
        yield start, len(text)


def _offset(source: str, line: int, pattern: str, *, blank: bool = True) -> int:
    """Where `pattern` first matches inside a tag on the template's `line` (0 if nowhere);
    quoted strings are blanked first unless `blank` is False. The pattern's first group,
    when it has one, is what the offset points at."""
    lines = _NEWLINE.split(source)
    if not 1 <= line <= len(lines):
        return 0
    text = lines[line - 1]
    regex = re.compile(pattern)
    for start, end in _regions(text):
        part = text[start:end]
        if blank:
            part = _QUOTED.sub(lambda quoted: " " * len(quoted[0]), part)
        found = regex.search(part)
        if found:
            return start + found.start(1 if found.groups() else 0)
    return 0


def _suggestion(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _problems(env: SandboxEnvironment, tree: nodes.Template, source: str) -> list[Problem]:
    problems: list[Problem] = []
    for node in tree.find_all(nodes.Node):
        line = node.lineno
        unavailable = _UNAVAILABLE.get(type(node))
        if unavailable is not None:
            tag, reason = unavailable
            problems.append((line, _offset(source, line, rf"\{{%[-+]?\s*({tag})\b"),
                             f"{{% {tag} %}} is not available: {reason}"))
        elif isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            problems.append((line, _offset(source, line, rf"\.\s*({re.escape(node.attr)})\b"),
                             f"attribute {node.attr!r} is not available in templates"))
        elif (isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const)
              and isinstance(node.arg.value, str) and node.arg.value.startswith("__")):
            problems.append((line, _offset(source, line, rf"\[\s*(['\"]{re.escape(node.arg.value)})",
                                           blank=False),
                             f"{node.arg.value!r} is not available in templates"))
        elif isinstance(node, nodes.Filter) and node.name not in env.filters:
            problems.append((line, _offset(source, line, rf"\|\s*({re.escape(node.name)})\b"),
                             f"unknown filter {node.name!r}{_suggestion(node.name, env.filters)} "
                             f"(filters: {', '.join(env.filters)})"))
        elif isinstance(node, nodes.Test) and node.name not in env.tests:
            problems.append((line, _offset(source, line, rf"\bis\s+(?:not\s+)?({re.escape(node.name)})\b"),
                             f"unknown test {node.name!r}{_suggestion(node.name, env.tests)}"))
        elif isinstance(node, nodes.Dict) and not all(isinstance(pair.key, nodes.Const)
                                                      for pair in node.items):
            problems.append((line, 0, "a dictionary's keys must be written as strings or numbers"))
        elif isinstance(node, nodes.Filter) and node.name == "datetime":
            problems.extend(_datetime_problems(node, source))
    return problems


def _datetime_problems(node: nodes.Filter, source: str) -> list[Problem]:
    """A literal zone or format of `datetime` is checked now rather than at every render."""
    zones()
    arguments: dict[str, nodes.Expr] = dict(zip(("format", "zone"), node.args, strict=False))
    arguments.update((keyword.key, keyword.value) for keyword in cast(list[nodes.Keyword], node.kwargs))
    problems: list[Problem] = []
    zone = arguments.get("zone")
    if isinstance(zone, nodes.Const) and isinstance(zone.value, str):
        try:
            time_zone(zone.value)
        except ValueError as error:
            problems.append((node.lineno, _offset(source, node.lineno, rf"(['\"]{re.escape(zone.value)})",
                                                  blank=False), str(error)))
    form = arguments.get("format")
    if isinstance(form, nodes.Const) and (not isinstance(form.value, str) or len(form.value) > MAX_FORMAT):
        problems.append((
            node.lineno, 0, f"datetime: the format must be text of at most {MAX_FORMAT} characters",
        ))
    return problems


def _assigned(tree: nodes.Template) -> set[str]:
    """Every name the template sets somewhere: `{% set %}`, loop targets, macros and their
    parameters. Jinja reports a name set in an `{% if %}` branch as undeclared, so these
    are not errors here; used where they are not set, they fail at render (and in CI)."""
    names = {node.name for node in tree.find_all(nodes.Name) if node.ctx in ("store", "param")}
    names.update(node.name for node in tree.find_all(nodes.Macro))
    return names


def _name_problems(tree: nodes.Template, source: str) -> list[Problem]:
    unknown = meta.find_undeclared_variables(tree) - VARIABLES - _assigned(tree)
    if any(isinstance(node, nodes.Name) and node.name == "self" and node.ctx == "load"
           for node in tree.find_all(nodes.Name)):
        unknown.add("self")
    problems: list[Problem] = []
    for name in sorted(unknown):
        lines = [node.lineno for node in tree.find_all(nodes.Name)
                 if node.name == name and node.ctx == "load"]
        line = min(lines, default=1)
        problems.append((line, _offset(source, line, rf"(?<![\w.])({re.escape(name)})(?!\w)"),
                         f"unknown variable {name!r}{_suggestion(name, VARIABLES)}"))
    return problems


def parse(source: str, where: Where, mode: Mode) -> tuple[SandboxEnvironment, nodes.Template]:
    """The checked syntax tree of a template, or its first problem as a TemplateError."""
    env = environment(mode)
    try:
        tree = env.parse(source)
        problems = _problems(env, tree, source)
        if not problems:
            problems = _name_problems(tree, source)
    except TemplateSyntaxError as error:
        raise where.error(f"syntax error: {error.message}", error.lineno) from None
    if problems:
        line, offset, message = min(problems)
        raise where.error(message, line, offset)
    return env, tree


def _constant_texts(env: SandboxEnvironment, concat: nodes.Concat) -> None:
    """Writes the constants joined by `~` as `{{ }}` would (`true`, not Python's `True`),
    since Jinja joins constants while compiling."""
    context = nodes.EvalContext(env)
    for index, item in enumerate(concat.nodes):
        try:
            value = item.as_const(context)
            if type(value) is not str:
                concat.nodes[index] = nodes.Const(to_text(value, DEFAULT_LIMITS.work), lineno=item.lineno)
        except Exception:  # noqa: S112 - not a constant: joined at render
            continue


def build(env: SandboxEnvironment, tree: nodes.Template, where: Where) -> JinjaTemplate:
    """Compiles a checked tree; every `for` loop iterates through `limited_iter`."""
    for loop in tree.find_all(nodes.For):
        loop.iter = limited(cast(nodes.Expr, loop.iter))
    for concat in tree.find_all(nodes.Concat):
        _constant_texts(env, concat)
    tree.set_environment(env)
    try:
        code = env.compile(tree)
    except TemplateSyntaxError as error:
        raise where.error(f"syntax error: {error.message}", error.lineno) from None
    return env.template_class.from_code(env, code, env.make_globals(None))


def _template_line(traceback: TracebackType | None, template: JinjaTemplate) -> int:
    """The template line of the innermost frame of `template` in a traceback."""
    line = 1
    while traceback is not None:
        if traceback.tb_frame.f_globals.get("__jinja_template__") is template:
            line = template.get_corresponding_lineno(traceback.tb_lineno)
        traceback = traceback.tb_next
    return line


def failure(error: BaseException, template: JinjaTemplate, where: Where) -> TemplateError:
    """A render's exception as a TemplateError at the template line it happened on."""
    return where.error(failure_message(error), _template_line(error.__traceback__, template))


def failure_message(error: BaseException) -> str:
    """What a render's exception says, for a TemplateError."""
    if isinstance(error, LimitError):
        message = f"limit: {error}"
    elif isinstance(error, SecurityError):
        message = f"not allowed: {error}"
    elif isinstance(error, UndefinedError):
        message = str(error)
    elif isinstance(error, RecursionError):
        message = "limit: nested too deeply"
    elif isinstance(error, OverflowError):
        message = "cannot render: a number out of range"
    else:
        message = f"cannot render: {error}" if str(error) else f"cannot render: {type(error).__name__}"
    return message


class Template:
    """A compiled template: `render(variables)` gives its text, or raises TemplateError."""

    __slots__ = ("_env", "_jinja", "_root", "limits", "mode", "source", "where")

    def __init__(self, source: str, where: Where, mode: Mode, limits: Limits, env: SandboxEnvironment,
                 jinja: JinjaTemplate) -> None:
        self.source = source
        self.where = where
        self.mode = mode
        self.limits = limits
        self._env = env
        self._jinja = jinja
        self._root = jinja.root_render_func

    def __repr__(self) -> str:
        return f"<Template {self.where.file}:{self.where.line}:{self.where.column} {self.mode}>"

    def render(self, variables: Variables) -> str:
        """The text for `variables` (from `event_variables` or `batch_variables`)."""
        budget = Budget(self.limits)
        previous = enter(budget)
        try:
            return self.render_within(variables, budget)
        finally:
            leave(previous)

    def render_within(self, variables: Variables, budget: Budget) -> str:
        """Renders with the current budget `budget`, shared with other templates (a payload)."""
        context = self._env.context_class(self._env, variables, None, _NO_BLOCKS, None)
        size = 0
        limit = budget.limits.size
        parts = []
        try:
            for part in self._root(context):
                size += len(part)
                if size > limit:
                    raise LimitError(f"the text is longer than {limit} characters")
                parts.append(part)
        except Exception as error:
            raise failure(error, self._jinja, self.where) from None
        return "".join(parts)


def compile_template(source: str, *, where: Where, mode: Mode, limits: Limits = DEFAULT_LIMITS) -> Template:
    """Compiles `source` for `mode`; its errors, now and at render, point into `where`."""
    env, tree = parse(source, where, mode)
    return Template(source, where, mode, limits, env, build(env, tree, where))
