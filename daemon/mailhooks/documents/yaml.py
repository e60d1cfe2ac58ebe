"""Reading one YAML document safely, keeping where every key and value came from.

ruamel.yaml's round-trip loader keeps line and column of every node, which lets a schema
error deep in a file point at `path:line:col`. Timestamps stay strings (so `format:
date-time` is checked as JSON Schema means it), and the document is copied into plain
Python values under a node budget, so an alias bomb or a self-referencing alias is an error
instead of a hang.
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Sequence
from typing import Any, Final, NoReturn

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor, SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, ReusedAnchorWarning, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mailhooks.documents.positions import START, PathPart, Position

# A reused anchor is legal YAML (the later one wins); ruamel's warning would go to stderr.
warnings.filterwarnings("ignore", category=ReusedAnchorWarning)

MAX_NODES: Final = 20000
MAX_DEPTH: Final = 64


class YamlError(Exception):
    def __init__(self, message: str, position: Position = START) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


class _StringTimestamps(RoundTripConstructor):
    """Keep `2024-01-15` as the string it was written as."""


_StringTimestamps.add_constructor(
    "tag:yaml.org,2002:timestamp", RoundTripConstructor.construct_yaml_str
)


class _SafeStringTimestamps(SafeConstructor):
    """The fast loader's constructor: safe types only, timestamps kept as written."""


_SafeStringTimestamps.add_constructor(
    "tag:yaml.org,2002:timestamp", SafeConstructor.construct_yaml_str
)


_local = threading.local()


def _fast_loader() -> YAML:
    """ruamel.yaml.clib's C parser when installed, ruamel's own otherwise; one per thread
    (setting one up costs more than reading a small file with it)."""
    yaml: YAML | None = getattr(_local, "fast", None)
    if yaml is None:
        yaml = YAML(typ="safe", pure=False)
        yaml.Constructor = _SafeStringTimestamps
        yaml.allow_duplicate_keys = False
        _local.fast = yaml
    return yaml


def _loader() -> YAML:
    yaml = YAML(typ="rt", pure=True)
    yaml.Constructor = _StringTimestamps
    yaml.allow_duplicate_keys = False
    return yaml


class Document:
    """Plain data (dict, list, str, int, float, bool, None), and where each value came from.

    The node tree with positions comes from ruamel's round-trip parser, which is several
    times slower than the C parser that reads the data: it is built only when a
    position is asked for, that is, only for files with an error.
    """

    def __init__(self, data: Any, text: str | None = None, tree: Any = None) -> None:
        self.data = data
        self._text = text
        self._tree = tree

    @property
    def tree(self) -> Any:
        if self._tree is None and self._text is not None:
            try:
                self._tree = _parse_round_trip(self._text)
            except YamlError:
                self._text = None  # the C parser read it; positions fall back to 1:1
        return self._tree

    def position(self, path: Sequence[PathPart], *, key: bool = False) -> Position:
        """Where the value at `path` starts, or its key when `key` is true.

        Walks as deep as the tree goes: a path that ends in a missing key points at the
        mapping that lacks it.
        """
        node = self.tree
        found = _start_of(node)
        for index, part in enumerate(path):
            last = index == len(path) - 1
            spot = _child_position(node, part, key=key and last)
            if spot is None:
                break
            found = spot
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                break
            if not last and isinstance(node, CommentedMap | CommentedSeq):
                found = _start_of(node, found)
        return found


def _start_of(node: Any, default: Position = START) -> Position:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return default
    return Position(lc.line + 1, lc.col + 1)


def _child_position(node: Any, part: PathPart, *, key: bool) -> Position | None:
    try:
        if isinstance(node, CommentedMap) and not isinstance(part, int):
            line, column = node.lc.key(part) if key else node.lc.value(part)
        elif isinstance(node, CommentedSeq) and isinstance(part, int):
            line, column = node.lc.item(part)
        else:
            return None
    except (KeyError, IndexError, TypeError):
        return None
    return Position(line + 1, column + 1)


def decode(raw: bytes) -> str:
    """UTF-8 (a BOM allowed), or an error pointing at the first bad byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = raw[: error.start]
        line = before.count(b"\n") + 1
        column = error.start - (before.rfind(b"\n") + 1) + 1
        raise YamlError(
            f"not UTF-8: byte 0x{raw[error.start]:02x} cannot be decoded", Position(line, column)
        ) from None


def parse(text: str) -> Document:
    """One YAML document as a Document; every failure is a YamlError with a position.

    The C parser reads valid files; anything it refuses is parsed again by the
    round-trip parser, whose messages and positions are the ones reported.
    """
    _check_depth(text)
    try:
        data = _fast_loader().load(text)
        return Document(_plain(data, _Budget(), 0), text=text)
    except (YAMLError, RecursionError, ValueError, OverflowError, YamlError):
        # Refused, or too big once aliases are expanded: the round-trip parser says
        # where.
        tree = _parse_round_trip(text)
        return Document(_plain(tree, _Budget(), 0), tree=tree)


def _parse_round_trip(text: str) -> Any:
    try:
        return _loader().load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        position = Position(mark.line + 1, mark.column + 1) if mark is not None else START
        raise YamlError(_describe(error, text), position) from None
    except YAMLError as error:
        raise YamlError(f"invalid YAML: {error}".splitlines()[0]) from None
    except RecursionError:
        raise YamlError(f"nested too deeply (more than {MAX_DEPTH} levels)") from None
    except (ValueError, OverflowError) as error:  # e.g. an integer of 5,000 digits
        raise YamlError(f"a value cannot be read: {str(error).splitlines()[0]}") from None


_DUPLICATE = re.compile(r'found duplicate key "(.*?)" with value')


def _check_depth(text: str) -> None:
    """Refuse deep nesting before composing it: ruamel's scanner is quadratic in the
    nesting of flow collections (10,000 brackets take seconds). Flow brackets are counted
    on the text, outside quotes and comments; block nesting (`- - - x`) is cheap to parse,
    so its events are counted. Only a document that could be that deep pays for this."""
    if text.count("[") + text.count("{") + text.count("- ") <= MAX_DEPTH:
        return
    _check_flow_depth(text)
    depth = 0
    try:
        for event in _loader().parse(text):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    _too_deep(event.start_mark.line + 1, event.start_mark.column + 1)
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except YAMLError:
        return  # a syntax error: loading reports it with its position


def _check_flow_depth(text: str) -> None:
    depth, line, column, quote, comment = 0, 1, 0, "", False
    for char in text:
        column += 1
        if char == "\n":
            line, column, comment = line + 1, 0, False
        elif comment:
            continue
        elif quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#":
            comment = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                _too_deep(line, column)
        elif char in "]}":
            depth = max(0, depth - 1)


def _too_deep(line: int, column: int) -> NoReturn:
    raise YamlError(f"nested too deeply (more than {MAX_DEPTH} levels)", Position(line, column))


def _describe(error: MarkedYAMLError, text: str) -> str:
    """ruamel's wording, made one line and specific where a person needs more."""
    problem = " ".join(str(error.problem or "invalid YAML").split())
    if "'\\t'" in problem:
        return "tab character: YAML indents with spaces only"
    duplicate = _DUPLICATE.search(problem)
    if duplicate:
        first = _first_key_line(text, error.context_mark, duplicate[1])
        return f"duplicate key '{duplicate[1]}' (first given on line {first})"
    if "another document" in problem:
        return "more than one YAML document: a webhook file holds exactly one"
    context = " ".join(str(error.context).split()) if error.context else ""
    return f"{problem} ({context})" if context else problem


def _first_key_line(text: str, mapping: Any, key: str) -> int | str:
    """The line of `key`'s first use in the mapping that starts at `mapping` (a mark).

    ruamel's error only marks the mapping and the duplicate, so the first one is found in
    the node graph, which composes without the duplicate check and without expanding aliases.
    """
    if mapping is None:
        return "?"
    try:
        root = _loader().compose(text)
    except YAMLError:
        return mapping.line + 1  # type: ignore[no-any-return]
    stack: list[Node] = [root] if root is not None else []
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            here = node.start_mark
            if (here.line, here.column) == (mapping.line, mapping.column):
                for name, _ in node.value:
                    if isinstance(name, ScalarNode) and name.value == key:
                        return name.start_mark.line + 1  # type: ignore[no-any-return]
            stack.extend(child for pair in node.value for child in pair)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return mapping.line + 1  # type: ignore[no-any-return]


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0

    def spend(self) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise YamlError(
                f"document expands to more than {MAX_NODES} values "
                "(aliases that repeat each other: an alias bomb?)"
            )


def _plain(node: Any, budget: _Budget, depth: int) -> Any:
    budget.spend()
    if depth > MAX_DEPTH:
        raise YamlError(f"nested too deeply (more than {MAX_DEPTH} levels)", _start_of(node))
    if isinstance(node, dict):
        return {str(key): _plain(value, budget, depth + 1) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item, budget, depth + 1) for item in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return str(node)
