"""What each host runs: the revision of the webhooks directory a load read (issue 19).

The git commit when the directory is in a git work tree (and whether files in it differ
from that commit), else a hash of the webhook files' contents. The daemon shows it in
`/status`, `mailhooks status`, its reload log line and the metric
`mailhooks_config_info{revision=…} 1`, so a fleet's drift is one Prometheus query.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

GIT_TIMEOUT: Final = 10.0
COMMIT: Final = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# Never ask for a password, never page, never take a lock: `git status` would otherwise
# refresh a stale index and write it back under .git/index.lock, racing with a `git pull`
# of the checkout on the host. Reading is all mailhooks does with git.
GIT_ENV: Final = {"GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "GIT_OPTIONAL_LOCKS": "0"}


def git_env() -> dict[str, str]:
    """The environment for every git that mailhooks runs: the process's, read-only."""
    return {**os.environ, **GIT_ENV}


@dataclass(frozen=True)
class Revision:
    """`id` is a commit (kind "git") or `sha256:…` of the files (kind "content");
    `dirty` when files under the directory differ from the commit."""

    kind: str
    id: str
    dirty: bool = False

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.id, "dirty": self.dirty}

    @property
    def label(self) -> str:
        """The metric's label: the commit, with `-dirty` when files differ from it."""
        return self.id + ("-dirty" if self.dirty else "")


def _git(directory: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True,
            timeout=GIT_TIMEOUT, check=False, env=git_env(),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_revision(directory: Path) -> Revision | None:
    """The commit checked out in `directory`'s work tree, or None outside git (or where git
    refuses the repository, e.g. one owned by another user)."""
    commit = _git(directory, "rev-parse", "--verify", "HEAD")
    if not commit:
        return None
    changes = _git(directory, "status", "--porcelain", "--untracked-files=normal", "--", ".")
    return Revision("git", commit, dirty=bool(changes))


def same_webhooks(directory: Path, old: str, new: str) -> bool:
    """Whether commits `old` and `new` hold the same files at `directory`: the commits
    between them changed only files outside it. False when git cannot say (a commit it
    does not have, a directory one of them lacks)."""
    if not (COMMIT.fullmatch(old) and COMMIT.fullmatch(new)):
        return False
    trees = _git(directory, "rev-parse", f"{old}:./", f"{new}:./")
    if trees is None:
        return False
    found = trees.splitlines()
    return len(found) == 2 and found[0] == found[1]


def content_revision(digests: Iterable[tuple[str, str]]) -> Revision:
    """A hash of (relative path, content digest) pairs: the same files, the same id."""
    summary = hashlib.sha256()
    for path, digest in sorted(digests):
        summary.update(f"{path}\0{digest}\n".encode())
    return Revision("content", "sha256:" + summary.hexdigest()[:16])


def revision_of(directory: Path, digests: Iterable[tuple[str, str]]) -> Revision:
    return git_revision(directory) or content_revision(digests)
