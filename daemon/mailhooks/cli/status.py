"""`mailhooks status`: the running daemon's config state, queue and failing webhooks."""

from __future__ import annotations

import argparse
import json

from mailhooks.cli.client import call
from mailhooks.cli.common import CommandError, say, settings_of, shared, socket_of


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("status", help="the running daemon's state")
    shared(parser, socket=True)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    status, report = call(socket_of(args, settings), "GET", "/status")
    if status != 200 or not isinstance(report, dict):
        raise CommandError(f"the daemon answered {status}")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    config, queue = report["config"], report["queue"]
    state = "ok" if config["ok"] else f"{len(config['errors'])} error(s)"
    say(f"config:   {config['webhooks']} of {config['limit']} webhooks loaded, {state}")
    for error in config["errors"]:
        say(f"          {error}")
    oldest = queue["oldest_pending_seconds"]
    say(f"queue:    {queue['pending']} pending"
          + (f" (oldest {oldest:.0f}s)" if oldest is not None else "")
          + f", {queue['in_flight']} in flight, {queue['failed']} failed,"
          f" spool {queue['spool_bytes'] / 1048576:.1f} MiB")
    if report["failing"]:
        say("failing:")
        for row in report["failing"]:
            breaker = ("paused (mailhooks resume " + row["webhook"] + ")" if row.get("paused")
                       else "circuit open" if row["circuit_open"] else "retrying")
            say(f"          {row['webhook']}: {row['consecutive_failures']} consecutive "
                  f"failure(s), {row['pending']} pending, {breaker}")
    else:
        say("failing:  none")
    say(f"secrets:  {report.get('secrets', 'not scoped')}")
    return 0
