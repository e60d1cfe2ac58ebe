"""`mailhooks test ID [--event NAME]`: the Test button; sends a sample event now."""

from __future__ import annotations

import argparse
import json
from urllib.parse import quote

from mailhooks.cli.client import call
from mailhooks.cli.common import CommandError, add_socket, settings_of, socket_of
from mailhooks.events import EVENT_NAMES


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("test", help="send a sample event to a webhook now")
    parser.add_argument("id", metavar="ID", help="the webhook's id (its path without .yaml)")
    parser.add_argument("--event", choices=EVENT_NAMES, help="default: its first selected event")
    add_socket(parser)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    body = json.dumps({"event": args.event} if args.event else {}).encode()
    status, answer = call(socket_of(args, settings), "POST",
                          f"/webhooks/{quote(args.id)}/test", body=body)
    if status == 404:
        raise CommandError(f"no webhook {args.id!r} is loaded (see mailhooks list)")
    if not isinstance(answer, dict):
        raise CommandError(f"the daemon answered {status}: {answer}")
    if args.json:
        print(json.dumps(answer, indent=2))
    elif answer.get("ok"):
        print(f"{args.id}: {answer['event']} delivered: HTTP {answer['status']} "
              f"in {answer['duration_ms']:.0f} ms")
        if answer.get("body"):
            print(f"  answer: {answer['body'][:200]!r}")
    else:
        what = f"HTTP {answer['status']}" if answer.get("status") else "not delivered"
        print(f"{args.id}: {answer.get('event', '?')} {what}"
              + (f" in {answer['duration_ms']:.0f} ms" if "duration_ms" in answer else "")
              + (f": {answer['error']}" if answer.get("error") else ""))
        if answer.get("body"):
            print(f"  answer: {answer['body'][:200]!r}")
    return 0 if answer.get("ok") else 1
