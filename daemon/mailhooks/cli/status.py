"""`mailhooks status`: the running daemon's config state, queue and failing webhooks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mailhooks.cli.client import call
from mailhooks.cli.common import CommandError, say, settings_of, shared, socket_of
from mailhooks.revision import git_revision, same_webhooks


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
    for number, line in enumerate(revision_lines(config)):
        say(("revision: " if number == 0 else "          ") + line)
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


def revision_lines(config: dict[str, Any]) -> list[str]:
    """What runs, and how the directory's checkout differs from it (read here, where the
    command runs: the host's own checkout)."""
    running = config.get("revision")
    if running is None:
        return ["unknown (the daemon has not loaded every file yet)"]
    lines = [f"{running['id']} ({running['kind']})"]
    read = config.get("read_revision")
    if read and read["id"] != running["id"]:
        lines.append(f"the last reload read {read['id']} and refused a file: see the errors above")
    directory = Path(config.get("directory") or "")
    checkout = git_revision(directory) if running["kind"] == "git" and directory.is_dir() else None
    if checkout is not None:
        if checkout.id != running["id"] and (not read or checkout.id != read["id"]):
            if not running.get("dirty") and same_webhooks(directory, running["id"], checkout.id):
                lines.append(f"the checkout is at {checkout.id}, with the same webhooks (only files "
                             f"outside {directory} changed)")
            else:
                lines.append(f"the checkout is at {checkout.id}: not loaded yet (a reload is due, "
                             "or failed: mailhooks validate)")
        if checkout.dirty:
            lines.append(f"files in {directory} differ from the commit (uncommitted changes)")
    return lines
