"""Where a problem is: a position in a file, and the one-line problem report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from mailhooks.text import visible

PathPart = str | int


@dataclass(frozen=True, order=True)
class Position:
    """1-based line and column, as editors and compilers print them."""

    line: int
    column: int


START: Final = Position(1, 1)


@dataclass(frozen=True, order=True)
class Problem:
    """One error in one file, printed as `file:line:col: message`."""

    file: str
    position: Position
    message: str

    def __str__(self) -> str:
        # One problem is one line, whatever a hostile file's keys or values hold.
        return visible(f"{self.file}:{self.position.line}:{self.position.column}: {self.message}")


@dataclass(frozen=True)
class SchemaProblem:
    """An error found in a document's data: where (a path in the document, and whether at
    the key) and what. `Document.position` turns the path into a line and column."""

    path: tuple[PathPart, ...]
    message: str
    at_key: bool = False


def find_text(content: str, needle: str) -> Position:
    """Where `needle` first appears in `content` (the start of the file if nowhere)."""
    offset = content.find(needle) if needle else -1
    if offset < 0:
        return START
    line_start = content.rfind("\n", 0, offset) + 1
    return Position(content.count("\n", 0, offset) + 1, offset - line_start + 1)


def dotted(path: Sequence[PathPart]) -> str:
    """`channel.headers.X-Key`, `events[2]`: a path as a person reads it."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
