"""`mailhooks test ID [--event NAME]`: the Test button; sends a sample event now.

Without a directory it asks the running daemon to send it (as the webhook runs there).
With DIR or --webhooks it loads the webhook from those files and sends it from here: a
working copy tried before it is deployed, with this process's secrets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any
from urllib.parse import quote

from mailhooks.cli.client import call
from mailhooks.cli.common import (
    CommandError,
    directory_given,
    directory_of,
    say,
    settings_of,
    shared,
    socket_of,
)
from mailhooks.events import EVENT_NAMES
from mailhooks.settings import Settings
from mailhooks.text import visible


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("test", help="send a sample event to a webhook now")
    parser.add_argument("id", metavar="ID", help="the webhook's id (its path without .yaml)")
    parser.add_argument("--event", choices=EVENT_NAMES, help="default: its first selected event")
    shared(parser, directory=True, socket=True)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    if directory_given(args) is not None:
        answer = asyncio.run(_from_files(args, settings))
    else:
        body = json.dumps({"event": args.event} if args.event else {}).encode()
        status, answer = call(socket_of(args, settings), "POST",
                              f"/webhooks/{quote(args.id)}/test", body=body)
        if status == 404:
            raise CommandError(f"no webhook {args.id!r} is loaded (see mailhooks list)")
        if not isinstance(answer, dict):
            raise CommandError(f"the daemon answered {status}")
    _print(args, answer)
    return 0 if answer.get("ok") else 1


async def _from_files(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from mailhooks.channels.context import ChannelContext
    from mailhooks.live import build_one
    from mailhooks.secrets import SecretError, SecretSources, references
    from mailhooks.trial import send_sample
    from mailhooks.webhooks.load import load_webhooks

    directory = directory_of(args, settings)
    result = load_webhooks(directory, settings)
    loaded = result.webhooks.get(args.id)
    if loaded is None:
        problems = [str(problem) for problem in result.problems if args.id in problem.file]
        reason = problems[0] if problems else f"no webhook {args.id!r} in {directory}"
        raise CommandError(reason)
    context = ChannelContext(settings)
    try:
        live = build_one(loaded, settings, context, SecretSources.from_process(settings.secrets.dirs))
        if settings.secrets.grants is None and references(loaded.webhook.channel.secret_texts()):
            # From files on this host (a pull request's checkout, say), with this host's
            # secrets: say that nothing limits where they go, as the daemon does at start.
            where = f"in {args.config}" if args.config else "given: pass --config"
            say(f"mailhooks test: secrets: not scoped (no secrets.grants {where}); "
                f"{args.id}'s secrets go where its file says", err=True)
        return await send_sample(live, args.event)
    except (SecretError, ValueError) as error:
        raise CommandError(f"{args.id}: {error}") from None
    finally:
        await context.close()


def _print(args: argparse.Namespace, answer: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(answer, indent=2))
        return
    if answer.get("ok"):
        print(f"{args.id}: {answer['event']} delivered: HTTP {answer['status']} "
              f"in {answer['duration_ms']:.0f} ms")
    else:
        what = f"HTTP {answer['status']}" if answer.get("status") else "not delivered"
        print(f"{args.id}: {answer.get('event', '?')} {what}"
              + (f" in {answer['duration_ms']:.0f} ms" if "duration_ms" in answer else "")
              + (f": {visible(answer['error'])}" if answer.get("error") else ""))
    if answer.get("body"):
        print(f"  answer: {visible(answer['body'][:200])}")
