"""Secret references (`${env:NAME}`, `${file:/path}`, `${credential:NAME}`) and their resolution.

Secrets never live in a webhook file: the file names where the daemon finds them, so the
files can be reviewed and validated in CI without the secrets themselves.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final

from pydantic import Field

from mailhooks.files import read_regular
from mailhooks.reasons import os_reason

SECRET_REF_PATTERN: Final = (
    r"^\$\{(env:[A-Za-z_][A-Za-z0-9_]*|file:/[^}]+|credential:[A-Za-z0-9_.@-]+)\}$"
)
_REFERENCE = re.compile(r"\$\{(env|file|credential):([^}]*)\}")
_FULL_REFERENCE = re.compile(SECRET_REF_PATTERN)
SecretRef = Annotated[
    str,
    Field(
        pattern=SECRET_REF_PATTERN,
        description="A reference to a secret: ${env:NAME}, ${file:/abs/path} or ${credential:NAME}.",
    ),
]
HOW_TO_REFERENCE: Final = (
    "write a reference instead: ${env:NAME}, ${file:/absolute/path} "
    "or ${credential:NAME} (systemd LoadCredential=)"
)

# A secret is a token, a key or a PEM file: 64 KiB is far more than any, and bounds what
# a reference to /dev/zero or a huge file could make the daemon read.
MAX_SECRET_BYTES: Final = 65536


class SecretError(Exception):
    """A reference that cannot be resolved; the message names the reference, never a value."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.reference = message.split(": ", 1)[0]


@dataclass(frozen=True)
class SecretSources:
    """Where references point: the environment and systemd's credentials directory;
    and, when `file_dirs` is set (the config's `secrets.dirs`), the directories a
    `${file:}` reference must lie in once its links are followed."""

    environ: Mapping[str, str]
    credentials_directory: str | None
    file_dirs: tuple[Path, ...] = ()

    @classmethod
    def from_process(cls, file_dirs: Sequence[Path] = ()) -> SecretSources:
        return cls(os.environ, os.environ.get("CREDENTIALS_DIRECTORY"), tuple(file_dirs))


def references(texts: Iterable[str]) -> list[str]:
    """Every reference in `texts`, once each, in order (`Bearer ${env:T}` has one)."""
    return list(dict.fromkeys(match[0] for text in texts for match in _REFERENCE.finditer(text)))


def inside(path: Path, directories: Sequence[Path]) -> bool:
    """Whether `path` lies in one of `directories` (paths as given: no link followed)."""
    return any(path == directory or directory in path.parents for directory in directories)


def is_reference(text: str) -> bool:
    """True when the whole string is one secret reference."""
    return _FULL_REFERENCE.match(text) is not None


def contains_reference(text: str) -> bool:
    return _REFERENCE.search(text) is not None


def _read_secret_file(path: Path, reference: str) -> str:
    try:
        raw = read_regular(path, MAX_SECRET_BYTES)
        return raw.decode("utf-8").removesuffix("\n").removesuffix("\r")
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
        path = Path(name)
        if sources.file_dirs:
            # The file itself, links followed, must be in one of the directories: a link
            # in a granted directory cannot lead a reference to another file.
            try:
                real = path.resolve(strict=True)
            except OSError as error:
                raise SecretError(f"{reference}: cannot read {path}: {os_reason(error)}") from None
            if not inside(real, [directory.resolve() for directory in sources.file_dirs]):
                raise SecretError(f"{reference}: {path} is not in a directory of secrets.dirs")
            path = real
        return _read_secret_file(path, reference)
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
    for reference in references(texts):
        found = _REFERENCE.fullmatch(reference)
        assert found is not None
        values[reference] = resolve_one(found[1], found[2], sources)
    return Resolved(values)


def resolve(text: str, sources: SecretSources) -> str:
    """Replace every reference in `text` by its secret (a header may hold `Bearer ${env:T}`)."""
    return resolve_all([text], sources).text(text)
