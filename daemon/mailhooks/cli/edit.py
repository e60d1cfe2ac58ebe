"""`mailhooks edit ID`: edit a webhook in $VISUAL/$EDITOR, validated before it is saved.

This module also holds what the four commands that change files (new, enable/disable,
edit, delete) share on the command line: finding the target, asking, and the closing
report (the whole directory validated, and the git command that would commit the change).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mailhooks.cli.common import CommandError, directory_of, settings_of, shared
from mailhooks.documents.positions import Problem
from mailhooks.reasons import os_reason
from mailhooks.settings import Settings
from mailhooks.webhooks import edit
from mailhooks.webhooks.load import load_directory, load_webhooks


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("edit", help="edit a webhook in $EDITOR, validated on save")
    parser.add_argument("id", metavar="ID", help="the webhook's id (crm/opens)")
    shared(parser, directory=True)
    parser.set_defaults(run=run)


# --- shared by new, enable/disable, edit and delete ---------------------------------------


@dataclass(frozen=True)
class Target:
    settings: Settings
    directory: Path
    identifier: str
    path: Path


def target_of(args: argparse.Namespace) -> Target:
    settings = settings_of(args)
    directory = directory_of(args, settings)
    try:
        identifier = edit.parse_id(args.id)
        path = edit.webhook_path(directory, identifier)
    except edit.EditError as error:
        raise CommandError(error.message) from None
    return Target(settings, directory, identifier, path)


def failure(path: Path, error: edit.EditError) -> CommandError:
    where = f":{error.position.line}:{error.position.column}" if error.position else ""
    return CommandError(f"{path}{where}: {error.message}")


def interactive() -> bool:
    """Prompts only on a terminal: in scripts and CI every question has a safe answer."""
    return sys.stdin.isatty()


def ask(question: str) -> str:
    try:
        return input(question).strip()
    except EOFError:
        raise CommandError("no answer (end of input)") from None


def finish(target: Target, message: str | None = None, *, removed: bool = False) -> None:
    """Validate the whole directory and, in git, say how to commit the change to the file
    (`message`, when there was a change); `removed` when `git rm` already staged it."""
    result = load_webhooks(target.directory, target.settings)
    report(result.problems)
    if result.problems:
        print(f"{len(result.problems)} error(s) in {target.directory}: fix them before "
              "committing (mailhooks validate)", file=sys.stderr)
    count = len(load_directory(target.directory, target.settings).webhooks)
    print(f"{count} of {target.settings.limits.max_webhooks} webhooks")
    top = edit.git_toplevel(target.directory) if message is not None else None
    if message is not None and top is not None:
        absolute = target.path.parent.resolve() / target.path.name
        add = not removed and not edit.is_tracked(target.path)
        print(f"To commit: {edit.commit_hint(top, absolute, message, add=add)}")


def report(problems: Sequence[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


# --- mailhooks edit ------------------------------------------------------------------------


def editor_command() -> list[str]:
    """$VISUAL, then $EDITOR, then vi, as git and crontab choose; split as a shell would."""
    chosen = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        words = shlex.split(chosen)
    except ValueError as error:
        raise CommandError(f"cannot read the editor command {chosen!r}: {error}") from None
    if not words:
        raise CommandError("the editor command ($VISUAL or $EDITOR) is empty")
    return words


def run_editor(command: list[str], path: Path) -> None:
    try:
        done = subprocess.run([*command, str(path)], check=False)
    except OSError as error:
        raise CommandError(f"cannot run the editor {command[0]!r}: {os_reason(error)}") from None
    if done.returncode != 0:
        raise CommandError(f"the editor exited with {done.returncode}; nothing was changed")


def reopen() -> bool:
    """After an invalid save: reopen the editor, or keep the last valid version."""
    if not interactive():
        return False
    while True:
        answer = ask("Reopen the editor [r], or keep the last valid version [k]? ").lower()
        if answer in ("r", "reopen", ""):
            return True
        if answer in ("k", "keep"):
            return False


def run(args: argparse.Namespace) -> int:
    target = target_of(args)
    command = editor_command()
    original = target.path.read_bytes()
    others = load_directory(target.directory, target.settings)
    # The copy lives outside the webhooks directory, so the daemon never sees a half edit;
    # it keeps the file's name so the editor picks YAML mode (and the schema modeline).
    with tempfile.TemporaryDirectory(prefix="mailhooks-edit-") as scratch:
        copy = Path(scratch) / target.path.name
        copy.write_bytes(original)
        while True:
            run_editor(command, copy)
            if copy.read_bytes() == original:
                print(f"No changes to {target.path}")
                return 0
            problems = edit.check_file(
                copy, str(target.path), target.identifier, others, target.settings
            )
            if not problems:
                break
            report(problems)
            if not reopen():
                print(f"Kept the last valid version of {target.path}", file=sys.stderr)
                return 1
        edit.write_over(target.path, copy.read_bytes())
    print(f"Saved {target.path}")
    finish(target, f"Edit webhook {target.identifier}")
    return 0
