"""Load a webhooks directory: every file read, checked and typed, every error with `line:col`.

One bad file never hides the others: the result holds the good webhooks and a problem
for every bad file, all found in one pass. Nothing here touches live state; the daemon
decides what to do with a result (see `mailhooks.reload`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final, NamedTuple

from mailhooks import grants
from mailhooks.channels.base import WebhookRef
from mailhooks.documents.check import Found, check_document, read_limited
from mailhooks.documents.positions import START, Position, Problem, find_text
from mailhooks.documents.yaml import YamlError, decode, parse
from mailhooks.reasons import os_reason
from mailhooks.settings import Settings
from mailhooks.templates import NO_PLACES, Places
from mailhooks.webhooks.checks import check
from mailhooks.webhooks.ids import bad_part, is_candidate, webhook_id
from mailhooks.webhooks.models import Webhook
from mailhooks.webhooks.templating import template_problems

MAX_FILES: Final = 100000


@dataclass(frozen=True)
class LoadedWebhook:
    id: str
    path: Path
    webhook: Webhook
    digest: str
    places: Places = field(default_factory=lambda: NO_PLACES, compare=False)

    @property
    def ref(self) -> WebhookRef:
        """The webhook as its sender names it, with where its templates are in the file."""
        return WebhookRef(self.id, self.webhook.name, str(self.path), self.places)


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


# A link named x.yaml may point anywhere a pull request likes, a credential file too; its
# content must never reach an error message, so only a link to a webhook file is read.
LINK_TO_OTHER_FILE: Final = ("a link to a file that is not a webhook file (*.yaml, *.yml): "
                             "not read")


def _walk(directory: Path) -> Iterator[tuple[Path, OSError | str | None]]:
    """Candidate files below `directory`, following links but never around a loop; with
    why not, for a file that cannot be read or must not be."""
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
                if entry.is_symlink() and not is_candidate(Path(entry.path).resolve().name):
                    yield Path(entry.path), LINK_TO_OTHER_FILE
                    continue
                yield Path(entry.path), None
        stack.extend(reversed(subdirectories))


class Checked(NamedTuple):
    """A file's content checked: the webhook (None when refused), its problems, and where
    its templates start."""

    webhook: Webhook | None
    found: Found
    places: Places = NO_PLACES


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


def _load_file(path: Path, settings: Settings, cache: ParseCache | None) -> tuple[Checked, str]:
    """The file checked, and its content's digest."""
    try:
        raw = read_limited(path, settings.limits.max_file_bytes)
    except YamlError as error:
        return Checked(None, [(error.position, error.message)]), ""
    except OSError as error:
        return Checked(None, [(START, f"cannot read: {os_reason(error)}")]), ""
    digest = hashlib.sha256(raw).hexdigest()
    key = (digest, settings.allow_http)
    cached = cache.get(key) if cache is not None else None
    if cached is None:
        cached = check_bytes(raw, settings)
        if cache is not None:
            cache.put(key, cached)
    return cached, digest


def check_bytes(raw: bytes, settings: Settings) -> Checked:
    """A webhook file's content checked as the loader checks it (without its id)."""
    try:
        text = decode(raw)
        document = parse(text)
    except YamlError as error:
        return Checked(None, [(error.position, error.message)])
    webhook, found = check_document(
        document, Webhook, lambda data: check(data, allow_http=settings.allow_http)
    )
    if webhook is None:
        return Checked(None, found)
    # Templates last: they are checked against the typed channel, once per content.
    places: dict[tuple[str | int, ...], tuple[int, int]] = {}
    problems = sorted(set(template_problems(document, text, webhook, "", places)))
    return Checked(None, problems) if problems else Checked(webhook, [], MappingProxyType(places))


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
            said = error if isinstance(error, str) else f"cannot read: {os_reason(error)}"
            result.problems.append(Problem(shown, START, said))
            continue
        relative = path.relative_to(directory)
        identifier = webhook_id(relative)
        bad = bad_part(relative)
        if bad is not None:
            result.problems.append(Problem(shown, START, (
                f"file name {bad!r} cannot make a webhook id: use letters, digits, "
                "'.', '_' and '-', starting with a letter or digit"
            )))
            continue
        if identifier in result.webhooks or identifier in result.failed_ids:
            result.problems.append(Problem(
                shown, START, f"webhook id {identifier!r} is already taken by another file"
            ))
            continue
        (webhook, found, places), digest = _load_file(path, settings, cache)
        if webhook is None:
            result.failed_ids.add(identifier)
            result.problems.extend(Problem(shown, where, message) for where, message in found)
            continue
        taken_by = names.get(webhook.name.casefold())
        if taken_by is not None:
            result.failed_ids.add(identifier)
            try:
                where = name_position(path.read_bytes())
            except OSError:
                where = START
            result.problems.append(Problem(
                shown, where, f"name: {webhook.name!r} is already used by {taken_by}"
            ))
            continue
        refusals = grants.check(identifier, webhook.channel, settings)
        if refusals:
            result.failed_ids.add(identifier)
            content = path.read_text(encoding="utf-8", errors="replace")
            result.problems.extend(Problem(shown, find_text(content, refusal.reference), refusal.message)
                                   for refusal in refusals)
            continue
        names[webhook.name.casefold()] = shown
        result.webhooks[identifier] = LoadedWebhook(identifier, path, webhook, digest, places)


def name_position(raw: bytes) -> Position:
    """Where a file's `name` is, to point at a name already taken."""
    try:
        return parse(decode(raw)).position(("name",))
    except YamlError:
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
