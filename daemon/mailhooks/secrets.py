"""Secret references (`${env:NAME}`, `${file:/path}`, `${credential:NAME}`) and their resolution.

Secrets never live in a webhook file: the file names where the daemon finds them, so the
files can be reviewed and validated in CI without the secrets themselves.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mailhooks.reasons import os_reason

SECRET_REF_PATTERN: Final = (
    r"^\$\{(env:[A-Za-z_][A-Za-z0-9_]*|file:/[^}]+|credential:[A-Za-z0-9_.@-]+)\}$"
)
_REFERENCE = re.compile(r"\$\{(env|file|credential):([^}]*)\}")
_FULL_REFERENCE = re.compile(SECRET_REF_PATTERN)
HOW_TO_REFERENCE: Final = (
    "write a reference instead: ${env:NAME}, ${file:/absolute/path} "
    "or ${credential:NAME} (systemd LoadCredential=)"
)


class SecretError(Exception):
    """A reference that cannot be resolved; the message names the reference, never a value."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.reference = message.split(": ", 1)[0]


@dataclass(frozen=True)
class SecretSources:
    """Where references point: the environment and systemd's credentials directory."""

    environ: Mapping[str, str]
    credentials_directory: str | None

    @classmethod
    def from_process(cls) -> SecretSources:
        return cls(os.environ, os.environ.get("CREDENTIALS_DIRECTORY"))


def is_reference(text: str) -> bool:
    """True when the whole string is one secret reference."""
    return _FULL_REFERENCE.match(text) is not None


def contains_reference(text: str) -> bool:
    return _REFERENCE.search(text) is not None


def _read_secret_file(path: Path, reference: str) -> str:
    try:
        return path.read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
    except FileNotFoundError:
        raise SecretError(f"{reference}: file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SecretError(f"{reference}: cannot read {path}: {os_reason(error)}") from None


def resolve_one(kind: str, name: str, sources: SecretSources) -> str:
    reference = f"${{{kind}:{name}}}"
    if kind == "env":
        value = sources.environ.get(name)
        if value is None:
            raise SecretError(f"{reference}: environment variable {name} is not set")
        return value
    if kind == "file":
        if not name.startswith("/"):
            raise SecretError(f"{reference}: the path must be absolute")
        return _read_secret_file(Path(name), reference)
    if not sources.credentials_directory:
        raise SecretError(
            f"{reference}: $CREDENTIALS_DIRECTORY is not set "
            "(run under systemd with LoadCredential=, or set it)"
        )
    if "/" in name or name in {".", ".."}:
        raise SecretError(f"{reference}: a credential name cannot contain '/'")
    return _read_secret_file(Path(sources.credentials_directory) / name, reference)




class Resolved:
    """The secrets of one webhook, resolved at load. Its repr never shows a value."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def __repr__(self) -> str:
        return f"Resolved({len(self._values)} secret(s))"

    def text(self, template: str) -> str:
        """`template` with its references replaced (`Bearer ${env:T}` → `Bearer …`)."""
        return _REFERENCE.sub(lambda match: self._values[match[0]], template)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resolved) and self._values == other._values

    __hash__ = None  # type: ignore[assignment]

    def values(self) -> list[str]:
        """Every resolved value, for tests that prove no log line carries one."""
        return list(self._values.values())


def resolve_all(texts: list[str], sources: SecretSources) -> Resolved:
    """Resolve every reference in `texts`; the first failure raises SecretError."""
    values: dict[str, str] = {}
    for text in texts:
        for match in _REFERENCE.finditer(text):
            if match[0] not in values:
                values[match[0]] = resolve_one(match[1], match[2], sources)
    return Resolved(values)


def resolve(text: str, sources: SecretSources) -> str:
    """Replace every reference in `text` by its secret (a header may hold `Bearer ${env:T}`)."""
    return resolve_all([text], sources).text(text)
