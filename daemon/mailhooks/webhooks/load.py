"""Load a webhooks directory: every file read, checked and typed, every error with `line:col`.

One bad file never hides the others: the result holds the good webhooks and a problem
for every bad file, all found in one pass. Nothing here touches live state; the daemon
decides what to do with a result (see `mailhooks.reload`).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from mailhooks.reasons import os_reason
from mailhooks.settings import Settings
from mailhooks.webhooks.checks import check
from mailhooks.webhooks.models import Webhook
from mailhooks.webhooks.schema import SchemaProblem, dotted, problems
from mailhooks.webhooks.yaml import START, Document, PathPart, Position, YamlError, decode, parse

SUFFIXES: Final = (".yaml", ".yml")
_ID_PART: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_FILES: Final = 100000

ModelT = TypeVar("ModelT", bound=BaseModel)
_VISIBLE: Final = {
    code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, 0x85, 0x2028, 0x2029)
} | {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


@dataclass(frozen=True, order=True)
class Problem:
    """One error in one file, printed as `file:line:col: message`."""

    file: str
    position: Position
    message: str

    def __str__(self) -> str:
        # One problem is one line, whatever a hostile file's keys or values hold.
        text = f"{self.file}:{self.position.line}:{self.position.column}: {self.message}"
        return text.translate(_VISIBLE)


@dataclass(frozen=True)
class LoadedWebhook:
    id: str
    path: Path
    webhook: Webhook
    digest: str


@dataclass
class LoadResult:
    directory: Path
    webhooks: dict[str, LoadedWebhook] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Ids whose file exists but is invalid: the daemon keeps their last good version.
    failed_ids: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.problems


def webhook_id(relative: Path) -> str:
    return relative.with_suffix("").as_posix()


def is_candidate(name: str) -> bool:
    """A webhook file: *.yaml or *.yml, not hidden, not an editor's temporary file."""
    return (
        name.endswith(SUFFIXES)
        and not name.startswith((".", "#", "~"))
        and not name.endswith("~")
    )


def _walk(directory: Path) -> Iterator[tuple[Path, OSError | None]]:
    """Candidate files below `directory`, following links but never around a loop."""
    seen: set[tuple[int, int]] = set()
    stack = [directory]
    while stack:
        current = stack.pop()
        try:
            info = current.stat()
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            entries = sorted(os.scandir(current), key=lambda entry: entry.name)
        except OSError as error:
            yield current, error
            continue
        subdirectories = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_directory = entry.is_dir(follow_symlinks=True)
            except OSError as error:
                yield Path(entry.path), error
                continue
            if is_directory:
                subdirectories.append(Path(entry.path))
            elif is_candidate(entry.name):
                yield Path(entry.path), None
        stack.extend(reversed(subdirectories))


def read_limited(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, or an error before reading more than `max_bytes` of it."""
    with path.open("rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise YamlError("not a regular file")
        raw = handle.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise YamlError(
            f"file too large: over {max_bytes} bytes (limits.max_file_bytes in the config)"
        )
    return raw


def check_document(
    document: Document, schema_file: str, model: type[ModelT],
    extra: Callable[[dict[str, Any]], Iterable[SchemaProblem]] | None = None,
) -> tuple[ModelT | None, list[tuple[Position, str]]]:
    """Schema first (for messages about the file as written), then the typed model."""
    data = document.data
    if data is None:
        return None, [(START, "file is empty")]
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        return None, [(START, f"expected a mapping of keys at the top of the file, found {kind}")]
    extra_found = list(extra(data)) if extra is not None else []
    if not extra_found and not _has_null(data):
        # The fast path for the usual, valid file: pydantic (strict, so it coerces
        # nothing the schema would refuse) checks it in its core. The schema, generated
        # from the same model, runs only to explain a file that fails.
        try:
            return model.model_validate(data, strict=True), []
        except ValidationError:
            pass
    found = list(dict.fromkeys([*problems(schema_file, data), *extra_found]))
    if found:
        return None, sorted(
            {(document.position(p.path, key=p.at_key), p.message) for p in found}
        )
    try:
        return model.model_validate(data), []
    except ValidationError as error:
        return None, sorted(
            (document.position(path), f"{dotted(path)}: {item['msg'].removeprefix('Value error, ')}")
            for item in error.errors()
            for path in [_document_path(data, item["loc"])]
        )


def _has_null(value: Any) -> bool:
    """The schema has no nulls (an optional key is left out); pydantic's optionals do."""
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_null(item) for item in value)
    return False


def _document_path(data: Any, loc: tuple[int | str, ...]) -> tuple[PathPart, ...]:
    """pydantic's error location without the union tags it adds (`channel.web.url`)."""
    path: list[PathPart] = []
    node = data
    for part in loc:
        in_mapping = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_mapping or in_list:
            node = node[part]
            path.append(part)
    return tuple(path)


Checked = tuple[Webhook | None, list[tuple[Position, str]]]


class ParseCache:
    """What a file's content checked to, by the content's hash and the settings that
    matter: a reload re-reads every file but parses only the ones that changed, so a
    directory of 1,000 webhooks reloads in well under a second."""

    def __init__(self, size: int = 4 * MAX_FILES // 10) -> None:
        self._size = size
        self._entries: dict[tuple[str, bool], Checked] = {}

    def get(self, key: tuple[str, bool]) -> Checked | None:
        return self._entries.get(key)

    def put(self, key: tuple[str, bool], checked: Checked) -> None:
        if len(self._entries) >= self._size:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = checked


def _load_file(
    path: Path, settings: Settings, cache: ParseCache | None
) -> tuple[Webhook | None, str, list[tuple[Position, str]]]:
    try:
        raw = read_limited(path, settings.limits.max_file_bytes)
    except YamlError as error:
        return None, "", [(error.position, error.message)]
    except OSError as error:
        return None, "", [(START, f"cannot read: {os_reason(error)}")]
    digest = hashlib.sha256(raw).hexdigest()
    key = (digest, settings.allow_http)
    cached = cache.get(key) if cache is not None else None
    if cached is None:
        cached = _check_bytes(raw, settings)
        if cache is not None:
            cache.put(key, cached)
    return cached[0], digest, cached[1]


def _check_bytes(raw: bytes, settings: Settings) -> Checked:
    try:
        document = parse(decode(raw))
    except YamlError as error:
        return None, [(error.position, error.message)]
    return check_document(
        document, "webhook.schema.json", Webhook,
        lambda data: check(data, allow_http=settings.allow_http),
    )


def load_directory(
    directory: Path, settings: Settings, cache: ParseCache | None = None
) -> LoadResult:
    """Every webhook file below `directory`, checked alone and against each other."""
    result = LoadResult(directory)
    for _ in load_steps(directory, settings, cache, result):
        pass
    return result


def load_steps(
    directory: Path, settings: Settings, cache: ParseCache | None, result: LoadResult
) -> Iterator[None]:
    """`load_directory` one file at a time, filling `result`: the daemon loads on its
    event loop and yields between files. (In a thread, each of the thousands of system
    calls of a large directory gave the GIL away and waited to get it back: a reload of
    1,000 files under load took a second instead of a tenth.)"""
    if not directory.is_dir():
        reason = "does not exist" if not directory.exists() else "is not a directory"
        result.problems.append(Problem(str(directory), START, f"webhooks directory {reason}"))
        return
    names: dict[str, str] = {}
    for count, (path, error) in enumerate(_walk(directory)):
        yield
        shown = str(path)
        if count >= MAX_FILES:
            result.problems.append(Problem(str(directory), START, f"more than {MAX_FILES} files"))
            break
        if error is not None:
            result.problems.append(Problem(shown, START, f"cannot read: {os_reason(error)}"))
            continue
        relative = path.relative_to(directory)
        identifier = webhook_id(relative)
        bad_part = next((p for p in relative.with_suffix("").parts if not _ID_PART.match(p)), None)
        if bad_part is not None:
            result.problems.append(Problem(shown, START, (
                f"file name {bad_part!r} cannot make a webhook id: use letters, digits, "
                "'.', '_' and '-', starting with a letter or digit"
            )))
            continue
        if identifier in result.webhooks or identifier in result.failed_ids:
            result.problems.append(Problem(
                shown, START, f"webhook id {identifier!r} is already taken by another file"
            ))
            continue
        webhook, digest, found = _load_file(path, settings, cache)
        if webhook is None:
            result.failed_ids.add(identifier)
            result.problems.extend(Problem(shown, where, message) for where, message in found)
            continue
        taken_by = names.get(webhook.name.casefold())
        if taken_by is not None:
            result.failed_ids.add(identifier)
            result.problems.append(Problem(
                shown, _name_position(path), f"name: {webhook.name!r} is already used by {taken_by}"
            ))
            continue
        names[webhook.name.casefold()] = shown
        result.webhooks[identifier] = LoadedWebhook(identifier, path, webhook, digest)


def _name_position(path: Path) -> Position:
    try:
        return parse(decode(path.read_bytes())).position(("name",))
    except (OSError, YamlError):
        return START


def apply_limit(result: LoadResult, limit: int, keep: frozenset[str] = frozenset()) -> LoadResult:
    """Refuse webhooks beyond `limit`: those in `keep` (already running) stay first."""
    if len(result.webhooks) <= limit:
        return result
    order = sorted(result.webhooks, key=lambda identifier: (identifier not in keep, identifier))
    for identifier in order[limit:]:
        loaded = result.webhooks.pop(identifier)
        result.failed_ids.add(identifier)
        result.problems.append(Problem(
            str(loaded.path), START,
            f"webhook limit reached: {len(order)} webhooks, the limit is {limit} "
            "(limits.max_webhooks in the config); this one is refused",
        ))
    return result


def load_webhooks(directory: Path, settings: Settings) -> LoadResult:
    """`load_directory` with the config's webhook limit applied."""
    return apply_limit(load_directory(directory, settings), settings.limits.max_webhooks)


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(problem) for problem in problems))
        self.problems = problems


def load_settings(path: Path | None) -> Settings:
    """The config file as Settings (defaults when `path` is None); relative paths in it are
    taken from the file's own directory, as Prometheus and Alertmanager do."""
    if path is None:
        return Settings()
    try:
        document = parse(decode(read_limited(path, 1048576)))
    except YamlError as error:
        raise ConfigError([Problem(str(path), error.position, error.message)]) from None
    except OSError as error:
        raise ConfigError([Problem(str(path), START, f"cannot read: {os_reason(error)}")]) from None
    if document.data is None:
        return Settings()
    settings, found = check_document(document, "config.schema.json", Settings)
    if settings is None:
        raise ConfigError([Problem(str(path), where, message) for where, message in found])
    base = path.parent
    updates = {
        name: base / value
        for name in ("webhooks_dir", "socket", "state_dir")
        if (value := getattr(settings, name)) is not None and not value.is_absolute()
    }
    return settings.model_copy(update=updates)
