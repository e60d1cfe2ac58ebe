"""`mailhooks send EVENT.json|-`: post events to the running daemon."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mailhooks.cli.client import call
from mailhooks.cli.common import CommandError, say, settings_of, shared, socket_of
from mailhooks.reasons import os_reason


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("send", help="post events to the running daemon")
    parser.add_argument("source", metavar="EVENT.json|-",
                        help="a JSON object, a JSON array or NDJSON; - for stdin")
    shared(parser, socket=True)
    parser.add_argument("--ndjson", action="store_true", help="the input is NDJSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    try:
        body = sys.stdin.buffer.read() if args.source == "-" else Path(args.source).read_bytes()
    except OSError as error:
        raise CommandError(f"cannot read {args.source}: {os_reason(error)}") from None
    ndjson = args.ndjson or args.source.endswith((".ndjson", ".jsonl"))
    content_type = "application/x-ndjson" if ndjson else "application/json"
    status, answer = call(socket_of(args, settings), "POST", "/events", body=body,
                          content_type=content_type)
    if status == 202:
        say(f"accepted {answer['accepted']} event(s)"
              + (f", {answer['duplicates']} already known" if answer.get("duplicates") else ""))
        return 0
    message = answer.get("error", answer) if isinstance(answer, dict) else answer
    say(f"mailhooks send: refused ({status}): {message}", err=True)
    for detail in answer.get("details", []) if isinstance(answer, dict) else []:
        field = f" {detail['field']}:" if detail.get("field") else ""
        say(f"  event {detail['index']}:{field} {detail['message']}", err=True)
    return 1
