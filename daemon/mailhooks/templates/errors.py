"""Where a template sits in its webhook file, and the one error type, `path:line:col: message`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

MAX_MESSAGE: Final = 300

# Where each template of a webhook starts in its file, by its path in the document
# (("channel", "payload", "properties", "email") → (line, column)), as the loader found it.
Places = Mapping[tuple[str | int, ...], tuple[int, int]]
NO_PLACES: Final[Places] = MappingProxyType({})


@dataclass(frozen=True)
class Where:
    """Where a template's first character is in its file, 1-based, as the caller read it.

    For a scalar on one line: the line and the column of its first character (after the
    quote of a quoted scalar). For a block scalar (`|`): the first line of its content and
    the column of its first character (indentation + 1); every later line of the template
    starts at that column too, so an error on its third line is reported at `line + 2`.
    """

    file: str
    line: int = 1
    column: int = 1

    def error(self, message: str, line: int = 1, offset: int = 0) -> TemplateError:
        """The error at `offset` characters into the template's `line` (1-based)."""
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 1] + "…"
        return TemplateError(message, self.file, self.line + max(line, 1) - 1, self.column + offset)


class TemplateError(Exception):
    """A template that does not compile or did not render, printed `path:line:col: message`."""

    def __init__(self, message: str, file: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"

    def __reduce__(self) -> tuple[type[TemplateError], tuple[str, str, int, int]]:
        return TemplateError, (self.message, self.file, self.line, self.column)
