"""`mailhooks enable ID` / `mailhooks disable ID`: flip `status`, and no other byte."""

from __future__ import annotations

import argparse

from mailhooks.cli.common import shared
from mailhooks.cli.edit import failure, finish, target_of
from mailhooks.documents.yaml import YamlError
from mailhooks.webhooks import edit

_VERBS = {"active": "Enable", "inactive": "Disable"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for command, status in (("enable", "active"), ("disable", "inactive")):
        parser = subparsers.add_parser(
            command, help=f"set a webhook's status to {status}, leaving the rest of its file as is"
        )
        parser.add_argument("id", metavar="ID", help="the webhook's id (crm/opens)")
        shared(parser, directory=True)
        parser.set_defaults(run=run, status=status)


def run(args: argparse.Namespace) -> int:
    target = target_of(args)
    status: edit.Status = args.status
    try:
        changed = edit.set_status(target.path.read_bytes(), status)
    except YamlError as error:
        raise failure(target.path, edit.EditError(error.message, error.position)) from None
    except edit.EditError as error:
        raise failure(target.path, error) from None
    if changed is None:
        print(f"{target.identifier} is already {status}")
        finish(target)
        return 0
    edit.write_over(target.path, changed)
    verb = _VERBS[status]
    print(f"{verb}d {target.identifier} ({target.path})")
    finish(target, f"{verb} webhook {target.identifier}")
    return 0
