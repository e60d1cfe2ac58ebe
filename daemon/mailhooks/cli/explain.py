"""`mailhooks explain EVENT.json|-`: which webhooks an event goes to, and why not the others.

With `--from kumomta|pmta|postfix|dsn`, the file holds a mail server's records instead:
they are read by that source (as `mailhooks ingest` would), and each event they give is
explained; the records it skips are said with their reason, so an operator can ask why a
real record did not fire."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mailhooks.cli.common import CommandError, directory_of, say, settings_of, shared
from mailhooks.events import Event
from mailhooks.ingest import SOURCES
from mailhooks.match import Matcher
from mailhooks.reasons import os_reason
from mailhooks.settings import Settings
from mailhooks.webhooks.load import load_webhooks


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("explain", help="which webhooks an event would go to, and why")
    parser.add_argument("event", metavar="EVENT.json|-", help="one event as JSON, - for stdin")
    shared(parser, directory=True)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--from", dest="source", choices=SOURCES, metavar="SOURCE",
                        help="the file holds this mail server's records: " + ", ".join(SOURCES))
    parser.set_defaults(run=run)


def read_bytes(source: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as error:
        raise CommandError(f"cannot read {source}: {os_reason(error)}") from None


def read_json(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"cannot read {source}: {getattr(error, 'strerror', error)}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CommandError(f"{source}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}") from None


def parse_event(data: Any, source: str) -> Event:
    try:
        return Event.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "event"
        raise CommandError(f"{source}: {field}: {first['msg']}") from None


def run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    if args.source is not None:
        return run_records(args, settings)
    event = parse_event(read_json(args.event), args.event)
    result = load_webhooks(directory_of(args, settings), settings)
    matcher = Matcher({key: loaded.webhook for key, loaded in result.webhooks.items()})
    verdicts = matcher.explain(event)
    if args.json:
        print(json.dumps({
            "event": event.payload(),
            "webhooks": [
                {"id": v.webhook_id, "name": v.name, "matched": v.matched, "reason": v.reason}
                for v in verdicts
            ],
            "errors": [str(problem) for problem in result.problems],
        }, indent=2))
        return 0
    for verdict in verdicts:
        outcome = "matched" if verdict.matched else f"not matched: {verdict.reason}"
        say(f"{verdict.webhook_id} ({verdict.name}): {outcome}")
    matched = sum(verdict.matched for verdict in verdicts)
    say(f"{matched} of {len(verdicts)} webhooks matched")
    for problem in result.problems:
        say(f"warning: {problem}", err=True)
    return 0


def run_records(args: argparse.Namespace, settings: Settings) -> int:
    """`--from SOURCE`: every event of the file's records, explained; what was skipped."""
    from mailhooks.ingest.files import parse_file  # the sources, only when asked for
    from mailhooks.sources.records import validated

    events, skipped = validated(parse_file(args.source, read_bytes(args.event)))
    result = load_webhooks(directory_of(args, settings), settings)
    matcher = Matcher({key: loaded.webhook for key, loaded in result.webhooks.items()})
    explained = [(event, matcher.explain(event)) for event in events]
    if args.json:
        print(json.dumps({
            "events": [
                {"event": event.payload(),
                 "webhooks": [{"id": v.webhook_id, "name": v.name, "matched": v.matched, "reason": v.reason}
                              for v in verdicts]}
                for event, verdicts in explained
            ],
            "skipped": [{"kind": item.kind, "detail": item.detail} for item in skipped],
            "errors": [str(problem) for problem in result.problems],
        }, indent=2))
        return 0
    for number, (event, verdicts) in enumerate(explained, start=1):
        say(f"event {number}: {event.event} {event.email} ({event.event_id})")
        for verdict in verdicts:
            outcome = "matched" if verdict.matched else f"not matched: {verdict.reason}"
            say(f"  {verdict.webhook_id} ({verdict.name}): {outcome}")
        say(f"  {sum(verdict.matched for verdict in verdicts)} of {len(verdicts)} webhooks matched")
    for item in skipped:
        say(f"skipped ({item.kind}): {item.detail}")
    say(f"{len(events)} event(s) from the {args.source} records, {len(skipped)} record(s) skipped")
    for problem in result.problems:
        say(f"warning: {problem}", err=True)
    return 0
