"""One side of a diff: the webhooks directory at a git revision, or a directory on disk.

A revision is read from git's objects, never from a checkout: the tree of the webhooks
directory at that commit is listed (`git ls-tree`), its webhook files are read (`git
cat-file --batch`) into a temporary directory, and that directory is loaded as the
daemon loads one, with the same rules for ids, names and limits. BASE and HEAD name
revisions of the repository that holds the webhooks directory.
"""

from __future__ import annotations

import os
import posixpath
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Final, Literal

from mailhooks.documents.positions import START, Problem
from mailhooks.reasons import os_reason
from mailhooks.revision import git_env
from mailhooks.settings import Secrets, Settings
from mailhooks.webhooks.ids import is_candidate
from mailhooks.webhooks.load import MAX_FILES, LoadResult, load_directory
from mailhooks.webhooks.models import Webhook

GIT_TIMEOUT: Final = 120.0
REGULAR_MODES: Final = frozenset({"100644", "100755"})
SYMLINK_MODE: Final = "120000"
MAX_LINK_HOPS: Final = 8


class SnapshotError(Exception):
    """A side that cannot be read at all: a bad revision, no repository, an unreadable
    directory. A usage or I/O error (exit 2); the message says which."""


@dataclass(frozen=True)
class Repository:
    """The git work tree that holds the webhooks directory, and the directory's path
    below its root (`""` at the root itself)."""

    root: Path
    prefix: str

    def shown(self, relative: str) -> str:
        """A path below the webhooks directory as relative to the repository root."""
        return posixpath.join(self.prefix, relative) if self.prefix else relative


@dataclass(frozen=True)
class Entry:
    """One valid webhook of a side: its id, its file as shown, the model and the text."""

    id: str
    file: str
    webhook: Webhook
    digest: str
    text: str


@dataclass
class Snapshot:
    given: str
    kind: Literal["revision", "directory"]
    directory: str
    commit: str | None = None
    entries: dict[str, Entry] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    try:
        done = subprocess.run(
            ["git", "--literal-pathspecs", "-C", str(root), *args], capture_output=True,
            timeout=GIT_TIMEOUT, check=False, env=git_env(),
        )
    except FileNotFoundError:
        raise SnapshotError("git is not installed (needed to read a revision)") from None
    except (OSError, subprocess.SubprocessError) as error:
        raise SnapshotError(f"git failed: {error}") from None
    if check and done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SnapshotError(f"git {args[0]} failed: {reason[-1] if reason else done.returncode}")
    return done


def find_repository(directory: Path) -> Repository | None:
    """The work tree `directory` is in (it need not exist at every revision), or None
    outside git. SnapshotError when git refuses the repository (one owned by another
    user, say), with git's reason."""
    absolute = directory.resolve()
    existing = next((path for path in (absolute, *absolute.parents) if path.is_dir()), None)
    if existing is None:
        return None
    done = _git(existing, "rev-parse", "--show-toplevel", check=False)
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        if not reason or "not a git repository" in reason[0]:
            return None
        raise SnapshotError(f"git cannot read the repository of {directory}: {reason[0]}")
    root = Path(os.fsdecode(done.stdout.rstrip(b"\n")))
    try:
        prefix = absolute.relative_to(root.resolve()).as_posix()
    except ValueError:
        return None
    return Repository(root, "" if prefix == "." else prefix)


def resolve_commit(repository: Repository, revision: str) -> str:
    """The commit `revision` names. A revision never reaches git as an option."""
    if not revision or revision.startswith("-") or any(ord(char) < 0x20 for char in revision):
        raise SnapshotError(f"{revision!r} is not a revision")
    done = _git(repository.root, "rev-parse", "--verify", "--quiet", "--end-of-options",
                f"{revision}^{{commit}}", check=False)
    if done.returncode != 0:
        raise SnapshotError(f"unknown revision {revision!r} in {repository.root}")
    return done.stdout.decode("ascii").strip()


@dataclass(frozen=True)
class _Blob:
    mode: str
    oid: str
    size: int


def _tree(repository: Repository, commit: str) -> dict[str, _Blob]:
    """The blobs below the webhooks directory at `commit`, by path relative to it."""
    pathspec = ["--", repository.prefix] if repository.prefix else []
    listing = _git(repository.root, "ls-tree", "-r", "-z", "-l", "--full-tree", commit, *pathspec).stdout
    blobs: dict[str, _Blob] = {}
    start = f"{repository.prefix}/" if repository.prefix else ""
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, kind, oid, size = meta.decode("ascii").split()
        path = os.fsdecode(raw_path)
        if kind != "blob" or not path.startswith(start):
            continue
        blobs[path[len(start):]] = _Blob(mode, oid, int(size) if size.isdigit() else 0)
    return blobs


def _safe_parts(relative: str) -> list[str] | None:
    """The parts of a path from a tree, or None for one that may not be written (`..`,
    empty parts) or that the loader skips anyway (a hidden part)."""
    parts = relative.split("/")
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return None
    return parts


def _follow(blobs: dict[str, _Blob], relative: str, targets: dict[str, str]) -> str | None:
    """A symbolic link's file in the same tree, links followed; None when it leads out."""
    current = relative
    for _ in range(MAX_LINK_HOPS):
        blob = blobs.get(current)
        if blob is None:
            return None
        if blob.mode in REGULAR_MODES:
            return current
        if blob.mode != SYMLINK_MODE:
            return None
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(current), targets[current]))
        if joined.startswith(("../", "/")) or joined == "..":
            return None
        current = joined
    return None


def _cat(root: Path, oids: list[str]) -> Iterator[tuple[str, bytes]]:
    """Each object's content, streamed from one `git cat-file --batch`."""
    if not oids:
        return
    process = subprocess.Popen(
        ["git", "-C", str(root), "cat-file", "--batch"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=git_env(),
    )
    stdin, stdout = process.stdin, process.stdout
    assert stdin is not None and stdout is not None

    def feed(pipe: IO[bytes]) -> None:
        try:
            pipe.write("".join(f"{oid}\n" for oid in oids).encode("ascii"))
        except OSError:
            pass
        finally:
            pipe.close()

    writer = threading.Thread(target=feed, args=(stdin,), daemon=True)
    writer.start()
    try:
        for oid in oids:
            header = stdout.readline().split()
            if len(header) != 3:
                raise SnapshotError(f"git cat-file: cannot read object {oid}")
            content = stdout.read(int(header[2]))
            stdout.read(1)
            yield oid, content
    finally:
        stdout.close()
        process.kill()
        process.wait(timeout=GIT_TIMEOUT)
        writer.join(timeout=GIT_TIMEOUT)


def _write_tree(repository: Repository, commit: str, target: Path, settings: Settings) -> list[Problem]:
    """The webhook files of the directory at `commit`, written below `target`."""
    blobs = _tree(repository, commit)
    links = [path for path, blob in blobs.items() if blob.mode == SYMLINK_MODE]
    targets = {path: os.fsdecode(content) for path, content in
               zip(links, (content for _, content in _cat(repository.root, [blobs[p].oid for p in links])),
                   strict=True)}
    wanted: dict[str, str] = {}  # relative path → the regular file whose content it has
    problems = []
    for relative, blob in sorted(blobs.items()):
        parts = _safe_parts(relative)
        if parts is None or not is_candidate(parts[-1]):
            continue
        if len(wanted) >= MAX_FILES:
            problems.append(Problem(repository.prefix or ".", START, f"more than {MAX_FILES} files"))
            break
        if blob.mode == SYMLINK_MODE:
            followed = _follow(blobs, relative, targets)
            if followed is None:
                problems.append(Problem(repository.shown(relative), START,
                                        "a symbolic link that leads out of the webhooks directory "
                                        "or nowhere: not read from a revision"))
                continue
            wanted[relative] = followed
        elif blob.mode in REGULAR_MODES:
            wanted[relative] = relative
    limit = settings.limits.max_file_bytes
    small = sorted({source for source in wanted.values() if blobs[source].size <= limit})
    contents: dict[str, bytes] = {}
    by_oid: dict[str, list[str]] = {}
    for source in small:
        by_oid.setdefault(blobs[source].oid, []).append(source)
    for oid, content in _cat(repository.root, list(by_oid)):
        for source in by_oid[oid]:
            contents[source] = content
    for relative, source in wanted.items():
        path = target.joinpath(*relative.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        if source in contents:
            path.write_bytes(contents[source])
        else:
            # Too large to read: a sparse file of its size, which the loader refuses as the
            # daemon would, without reading (or storing) the blob.
            with path.open("wb") as handle:
                handle.truncate(blobs[source].size)
    return problems


def _fill(snapshot: Snapshot, result: LoadResult, directory: Path, shown: Callable[[str], str]) -> None:
    """The load's webhooks and problems, with their files as people see them (never a
    temporary directory's path)."""
    for identifier, loaded in result.webhooks.items():
        relative = loaded.path.relative_to(directory).as_posix()
        text = loaded.path.read_text(encoding="utf-8", errors="replace")
        snapshot.entries[identifier] = Entry(identifier, shown(relative), loaded.webhook, loaded.digest, text)
    for problem in result.problems:
        try:
            relative = Path(problem.file).relative_to(directory).as_posix()
        except ValueError:
            relative = "."
        file = snapshot.directory if relative == "." else _decoded(shown(relative))
        snapshot.problems.append(Problem(file, problem.position, _decoded(problem.message)))


def _decoded(text: str) -> str:
    """A file name that is not UTF-8 (its bytes kept as surrogates), as text that can be
    printed and written as JSON: each such byte as `\\xNN`."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def unscoped(settings: Settings) -> Settings:
    """`settings` without secret grants: a side is read as its files say, so a webhook
    the grants refuse still shows, as a change (the comparison checks grants on HEAD)."""
    return settings.model_copy(update={"secrets": Secrets()})


def read_revision(repository: Repository, revision: str, settings: Settings) -> Snapshot:
    """The webhooks directory at `revision`, loaded as the daemon would load it (grants
    aside)."""
    settings = unscoped(settings)
    commit = resolve_commit(repository, revision)
    snapshot = Snapshot(revision, "revision", repository.prefix or ".", commit)
    with tempfile.TemporaryDirectory(prefix="mailhooks-diff-") as temporary:
        target = Path(temporary) / "webhooks"
        target.mkdir()
        snapshot.problems.extend(_write_tree(repository, commit, target, settings))
        result = load_directory(target, settings)
        _fill(snapshot, result, target, repository.shown)
    return snapshot


def read_directory(directory: Path, settings: Settings) -> Snapshot:
    """A directory as it is on disk (with uncommitted changes: what a host would load),
    grants aside."""
    settings = unscoped(settings)
    if not directory.exists():
        raise SnapshotError(f"{directory} does not exist")
    if not directory.is_dir():
        raise SnapshotError(f"{directory} is not a directory")
    try:
        with os.scandir(directory):
            pass
    except OSError as error:
        raise SnapshotError(f"cannot read {directory}: {os_reason(error)}") from None
    try:
        repository = find_repository(directory)
    except SnapshotError:
        repository = None  # files are then shown as found; nothing else needs git
    if repository is not None:
        snapshot = Snapshot(str(directory), "directory", repository.prefix or ".")
        shown = repository.shown
    else:
        snapshot = Snapshot(str(directory), "directory", str(directory))
        shown = lambda relative: str(PurePosixPath(directory.as_posix(), relative))  # noqa: E731
    _fill(snapshot, load_directory(directory, settings), directory, shown)
    return snapshot
