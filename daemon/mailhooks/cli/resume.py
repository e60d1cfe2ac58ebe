"""`mailhooks resume ID`: resume a webhook the daemon paused after it only failed for
`pause_after` (SPEC §5). A change to the webhook's file resumes it too."""

from __future__ import annotations

import argparse
from urllib.parse import quote

from mailhooks.cli.client import call
from mailhooks.cli.common import CommandError, say, settings_of, shared, socket_of


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("resume", help="resume a webhook the daemon paused")
    parser.add_argument("id", metavar="ID", help="the webhook's id (crm/opens)")
    shared(parser, socket=True)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    status, answer = call(socket_of(args, settings), "POST", f"/webhooks/{quote(args.id)}/resume",
                          body=b"{}")
    if status == 404:
        raise CommandError(f"no webhook {args.id!r} is loaded (see mailhooks list)")
    if status != 200 or not isinstance(answer, dict):
        raise CommandError(f"the daemon answered {status}")
    say(f"{args.id}: resumed; its pending deliveries are tried again" if answer["resumed"]
        else f"{args.id} was not paused")
    return 0
