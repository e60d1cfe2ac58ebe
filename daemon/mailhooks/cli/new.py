"""`mailhooks new [DIR]`: write one new, valid, commented webhook file, from flags or prompts.

Prompts appear only on a terminal and only when a required flag is missing; otherwise
(all flags given, or a script or CI) nothing is asked and a missing flag is an error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from mailhooks.cli.common import CommandError, directory_of, settings_of, shared
from mailhooks.cli.edit import Target, ask, finish, interactive, report
from mailhooks.events import EVENT_NAMES, FILTER_FIELDS
from mailhooks.settings import Settings
from mailhooks.webhooks import edit
from mailhooks.webhooks.load import LoadResult, load_directory

T = TypeVar("T")
PUSHOVER = "pushover"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("new", help="write a new webhook file (flags or prompts)")
    shared(parser, directory=True)
    parser.add_argument("--id", help="the webhook's id, its file's path without .yaml (crm/opens)")
    parser.add_argument("--name", help="display name, unique in the directory")
    parser.add_argument(
        "--events", help=f"all, or a comma-separated list of {', '.join(EVENT_NAMES)}"
    )
    channel = parser.add_mutually_exclusive_group()
    channel.add_argument("--url", help="send to this https endpoint")
    channel.add_argument("--pushover", action="store_true", help="send Pushover notifications")
    parser.add_argument(
        "--secret-ref", metavar="REF",
        help="signing secret reference: ${env:NAME}, ${file:/path} or ${credential:NAME}",
    )
    parser.add_argument("--user-key-ref", metavar="REF", help="Pushover user key reference")
    parser.add_argument("--token-ref", metavar="REF", help="Pushover application token reference")
    parser.add_argument(
        "--filter", action="append", default=[], metavar="FIELD=VALUE[,VALUE…]",
        help=f"only matching events; FIELD is one of {', '.join(FILTER_FIELDS)}",
    )
    parser.set_defaults(run=run)


def missing_flags(args: argparse.Namespace) -> list[str]:
    required = {"--id": args.id, "--name": args.name, "--events": args.events}
    if args.pushover:
        required |= {"--user-key-ref": args.user_key_ref, "--token-ref": args.token_ref}
    elif args.url is None:
        required["--url or --pushover"] = None
    return [flag for flag, given in required.items() if given is None]


def value(given: str | None, question: str, parse: Callable[[str], T]) -> T:
    """A flag's value, or the answer to `question`, asked again until it parses."""
    if given is not None:
        try:
            return parse(given)
        except edit.EditError as error:
            raise CommandError(error.message, 2) from None
    while True:
        try:
            return parse(ask(question))
        except edit.EditError as error:
            print(error.message, file=sys.stderr)


def optional(
    given: str | None, question: str, parse: Callable[[str], T], prompting: bool
) -> T | None:
    """An optional flag; asked for (an empty answer skips it) only when prompting anyway."""
    if given is None and not prompting:
        return None
    return value(given, question, lambda text: parse(text) if text else None)


def free_id(directory: Path, existing: LoadResult) -> Callable[[str], str]:
    def parse(text: str) -> str:
        identifier = edit.parse_id(text)
        taken = identifier in existing.webhooks or identifier in existing.failed_ids
        if taken or any(path.exists() for path in edit.candidate_paths(directory, identifier)):
            raise edit.EditError(f"webhook {identifier!r} already exists in {directory}")
        return identifier
    return parse


def channel_of(text: str) -> str:
    return PUSHOVER if text.strip().lower() == PUSHOVER else edit.parse_url(text)


def filters_of(args: argparse.Namespace, prompting: bool) -> dict[str, list[str]]:
    given = [value(text, "", edit.parse_filter) for text in args.filter]
    if prompting and not given:
        question = f"Filter ({'|'.join(FILTER_FIELDS)}=VALUE[,VALUE…]; empty when done): "
        while (found := optional(None, question, edit.parse_filter, prompting=True)) is not None:
            given.append(found)
    filters: dict[str, list[str]] = {}
    for name, values in given:
        filters.setdefault(name, []).extend(values)
    return filters


def gather(args: argparse.Namespace, directory: Path, existing: LoadResult) -> edit.NewWebhook:
    missing = missing_flags(args)
    if missing and not interactive():
        raise CommandError(
            f"missing {', '.join(missing)}: give them as flags, or run on a terminal to be asked", 2
        )
    prompting = bool(missing)
    identifier = value(args.id, "Id (file path without .yaml, e.g. crm/opens): ",
                       free_id(directory, existing))
    name = value(args.name, "Name: ", lambda text: text.strip() or _empty("a name"))
    events = value(args.events, "Events (all, or comma-separated names): ", edit.parse_events)
    channel = PUSHOVER if args.pushover else value(
        args.url, "Endpoint URL (https://…), or pushover: ", channel_of
    )
    new = edit.NewWebhook(identifier, name, events)
    if channel == PUSHOVER:
        new.user_key = value(args.user_key_ref, "Pushover user key reference (${env:NAME}…): ",
                             lambda text: edit.parse_reference(text, "user key"))
        new.api_token = value(args.token_ref, "Pushover app token reference (${env:NAME}…): ",
                              lambda text: edit.parse_reference(text, "token"))
    else:
        new.url = channel
        new.secret = optional(args.secret_ref, "Signing secret reference (empty for none): ",
                              lambda text: edit.parse_reference(text, "secret"), prompting)
    new.filters = filters_of(args, prompting)
    return new


def _empty(what: str) -> NoReturn:
    raise edit.EditError(f"give {what}")


def check_room(directory: Path, existing: LoadResult, settings: Settings) -> None:
    """Refuse before asking anything when the directory is already at its limit."""
    limit = settings.limits.max_webhooks
    count = len(existing.webhooks)
    if count >= limit:
        raise CommandError(
            f"{directory} is at its limit, {count} of {limit} webhooks "
            "(limits.max_webhooks in the config): nothing written"
        )


def run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    directory = directory_of(args, settings, must_exist=False)
    if directory.exists() and not directory.is_dir():
        raise CommandError(f"{directory} is not a directory")
    existing = load_directory(directory, settings)
    check_room(directory, existing, settings)
    new = gather(args, directory, existing)
    path = directory / f"{new.identifier}.yaml"
    text = edit.render(new, edit.schema_reference(path))
    with edit.staged(path, text.encode("utf-8")) as staged:
        problems = edit.check_file(staged, str(path), new.identifier, existing, settings)
        if problems:
            report(problems)
            raise CommandError(f"{path} not written: the webhook would be invalid")
        try:
            edit.create(path, staged)
        except edit.EditError as error:
            raise CommandError(error.message) from None
    print(f"Wrote {path}")
    finish(Target(settings, directory, new.identifier, path), f"Add webhook {new.identifier}")
    return 0
