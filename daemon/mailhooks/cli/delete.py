"""`mailhooks delete ID`: remove a webhook's file (`git rm` in git), after confirming."""

from __future__ import annotations

import argparse

from mailhooks.cli.common import CommandError, shared
from mailhooks.cli.edit import ask, failure, finish, interactive, target_of
from mailhooks.reasons import os_reason
from mailhooks.webhooks import edit


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("delete", help="remove a webhook's file (git rm in git)")
    parser.add_argument("id", metavar="ID", help="the webhook's id (crm/opens)")
    shared(parser, directory=True)
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    target = target_of(args)
    if not args.yes:
        if not interactive():
            raise CommandError("stdin is not a terminal: give --yes to delete without asking")
        answer = ask(f"Delete webhook {target.identifier} ({target.path})? [y/N] ")
        if answer.lower() not in ("y", "yes"):
            print("Nothing deleted")
            return 1
    try:
        with_git = edit.remove(target.path)
    except edit.EditError as error:
        raise failure(target.path, error) from None
    except OSError as error:
        raise CommandError(f"cannot delete {target.path}: {os_reason(error)}") from None
    print(f"Deleted {target.path}" + (" (git rm)" if with_git else ""))
    finish(target, f"Delete webhook {target.identifier}" if with_git else None, removed=True)
    return 0
