"""`mailhooks diff BASE [HEAD]`: what a change to the webhooks does, for its review.

BASE and HEAD are git revisions of the repository that holds the webhooks directory, or
directories; HEAD defaults to the webhooks directory as it is (uncommitted changes
included). Exits 0 with the diff shown, 1 when HEAD has errors (a file that does not
validate, a secret the config's grants refuse), 2 for a usage or I/O error (a bad
revision, no repository, an unreadable directory or metrics source).
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from mailhooks.cli.client import call
from mailhooks.cli.common import USAGE, CommandError, directory_given, say, settings_of, shared, socket_of
from mailhooks.gitops import github, report
from mailhooks.gitops.compare import compare
from mailhooks.gitops.estimate import MAX_METRICS_BYTES, MetricsError, Rates, estimate, rates
from mailhooks.gitops.model import Diff
from mailhooks.gitops.snapshot import (
    Snapshot,
    SnapshotError,
    find_repository,
    read_directory,
    read_revision,
)
from mailhooks.reasons import os_reason
from mailhooks.settings import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "diff", help="what a change to the webhooks does: added, changed, routed, secrets sent",
        description="Compare two states of the webhooks directory: git revisions of its "
                    "repository, or directories. Exits 0 with the diff, 1 when HEAD has errors, "
                    "2 for a usage or I/O error.",
    )
    parser.add_argument("base", metavar="BASE", help="a git revision (origin/main) or a directory")
    parser.add_argument(
        "head", metavar="HEAD", nargs="?",
        help="a git revision or a directory (default: the webhooks directory as it is)",
    )
    shared(parser, socket=True)
    parser.add_argument("--format", choices=sorted(FORMATS), default="text")
    parser.add_argument(
        "--estimate", nargs="?", const="", metavar="SOURCE",
        help="deliveries per hour the change adds, from the daemon's /metrics: its socket "
             "(default: --socket or the config's) or a saved copy (curl …/metrics > FILE); "
             "write --estimate=SOURCE, or --estimate after BASE and HEAD",
    )
    parser.set_defaults(run=run)


def read_side(given: str, directory: Path, settings: Settings) -> Snapshot:
    """A directory when `given` names one, else a revision of `directory`'s repository."""
    try:
        if Path(given).is_dir():
            return read_directory(Path(given), settings)
        if given.startswith("-"):
            raise CommandError(f"{given!r} is not a revision or a directory", USAGE)
        repository = find_repository(directory)
        if repository is None:
            raise CommandError(
                f"{given!r} is not a directory, and {directory} is not in a git repository "
                "to read it as a revision", USAGE,
            )
        return read_revision(repository, given, settings)
    except SnapshotError as error:
        raise CommandError(str(error), USAGE) from None


def measured(args: argparse.Namespace, settings: Settings) -> Rates:
    """The event rates from a running daemon's /metrics, or from a saved copy."""
    source: str = args.estimate
    path = Path(source) if source else socket_of(args, settings)
    try:
        info = path.stat()
    except OSError as error:
        raise CommandError(f"--estimate: cannot read {path}: {os_reason(error)}", USAGE) from None
    try:
        if stat.S_ISSOCK(info.st_mode):
            try:
                status, answer = call(path, "GET", "/metrics")
            except CommandError as error:  # unreachable: an I/O error for this command
                raise CommandError(f"--estimate: {error}", USAGE) from None
            if status != 200 or not isinstance(answer, str):
                raise CommandError(f"--estimate: the daemon answered {status} to GET /metrics")
            return rates(answer, time.time(), str(path), saved=False)
        if info.st_size > MAX_METRICS_BYTES:
            raise CommandError(f"--estimate: {path} is over {MAX_METRICS_BYTES} bytes", USAGE)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"--estimate: cannot read {path}: {os_reason(error)}", USAGE) from None
        return rates(text, info.st_mtime, str(path), saved=True)
    except MetricsError as error:
        raise CommandError(f"--estimate: {path}: {error}", USAGE) from None


def _text(diff: Diff) -> None:
    for line in report.text(diff):
        say(line)


def _markdown(diff: Diff) -> None:
    sys.stdout.write(report.markdown(diff))


def _json(diff: Diff) -> None:
    print(diff.model_dump_json(indent=2, exclude_none=True))


def _github(diff: Diff) -> None:
    for line in github.commands(diff):
        print(line)
    markdown = report.markdown(diff)
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        say("GITHUB_STEP_SUMMARY is not set: the summary follows", err=True)
        sys.stdout.write(markdown)
        return
    try:
        # Appended, as GitHub expects: other steps' summaries share the file.
        with Path(target).open("a", encoding="utf-8") as summary:
            summary.write(markdown)
    except OSError as error:
        raise CommandError(f"cannot write {target}: {os_reason(error)}", USAGE) from None
    _text(diff)


FORMATS: Final[dict[str, Callable[[Diff], None]]] = {
    "text": _text, "markdown": _markdown, "github": _github, "json": _json,
}


def run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    directory = directory_given(args) or settings.webhooks_dir
    base = read_side(args.base, directory, settings)
    if args.head is None:
        try:
            head = read_directory(directory, settings)
        except SnapshotError as error:
            raise CommandError(str(error), USAGE) from None
    else:
        head = read_side(args.head, directory, settings)
    diff = compare(base, head, settings)
    if args.estimate is not None:
        diff = diff.model_copy(update={"estimate": estimate(diff, measured(args, settings))})
    FORMATS[args.format](diff)
    return 1 if diff.errors else 0
