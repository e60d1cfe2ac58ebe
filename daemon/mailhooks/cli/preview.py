"""`mailhooks preview ID [--event NAME] [--batch N]`: what a webhook would send, not sent.

The webhook is loaded from the files (DIR, --webhooks, or the config's webhooks_dir) and
its sender built as the daemon builds it, secrets resolved; the sender then makes the
request for a sample event without sending it. Printed: the method and URL, the headers
the channel sets, a blank line, and the body (pretty JSON, or a form's fields one per
line). Every resolved secret is `[redacted]` wherever it appears (a chat URL, a bot token
in a path, a header, a form field), and so is the signature. A reference that cannot be
resolved here (CI has no credentials) is previewed with a placeholder, shown
`[unresolved]`, and said on stderr.

Exits 0; 1 when the webhook cannot be loaded or built, or nothing would be sent (its
template fails, its URL is refused); 2 for a usage error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl

from mailhooks.cli.common import USAGE, CommandError, directory_of, say, settings_of, shared
from mailhooks.events import EVENT_NAMES, EventName
from mailhooks.masking import Mask
from mailhooks.text import REDACTED

if TYPE_CHECKING:
    from mailhooks.channels.base import Message
    from mailhooks.channels.config import ChannelConfig
    from mailhooks.channels.http import Prepared
    from mailhooks.settings import Settings
    from mailhooks.webhooks.load import LoadedWebhook

UNRESOLVED: Final = "[unresolved]"
# A stand-in for a secret that cannot be resolved here: long enough to be a signing key.
PLACEHOLDER: Final = "unresolved-placeholder-secret"
_SIGNATURE: Final = re.compile(r"(v1,)\S+")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "preview", help="print what a webhook would send for a sample event, without sending it"
    )
    parser.add_argument("id", metavar="ID", help="the webhook's id (its path without .yaml)")
    parser.add_argument("--event", choices=EVENT_NAMES, help="default: its first selected event")
    parser.add_argument("--batch", type=_positive, metavar="N",
                        help="a batching webhook: a batch of N sample events (default 1)")
    shared(parser, directory=True)
    parser.set_defaults(run=run)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return value


def run(args: argparse.Namespace) -> int:
    from mailhooks.channels.base import Outcome
    from mailhooks.channels.context import ChannelContext
    from mailhooks.channels.http import HttpSender
    from mailhooks.channels.registry import build_sender
    from mailhooks.secrets import Resolved

    settings = settings_of(args)
    loaded = _loaded(args, settings)
    channel = loaded.webhook.channel
    resolved, placeholders = _secrets(channel, settings)
    mask = Mask(resolved.values(), [(placeholders.values(), UNRESOLVED)])
    try:
        sender = build_sender(loaded.ref, channel,
                              Resolved({**resolved, **placeholders}), ChannelContext(settings))
    except ValueError as error:
        raise CommandError(mask(f"{args.id}: {error}")) from None
    if not isinstance(sender, HttpSender):
        raise CommandError(f"{args.id}: a {channel.type} channel cannot be previewed")
    prepared = sender.prepare(_message(args, loaded))
    if isinstance(prepared, Outcome):
        raise CommandError(mask(f"{args.id}: nothing would be sent: {prepared.error}"))
    for line in request_lines(prepared, mask):
        say(line)
    return 0


def _loaded(args: argparse.Namespace, settings: Settings) -> LoadedWebhook:
    from mailhooks.webhooks.load import load_webhooks

    directory = directory_of(args, settings)
    result = load_webhooks(directory, settings)
    loaded = result.webhooks.get(args.id)
    if loaded is None:
        problems = [str(problem) for problem in result.problems if args.id in problem.file]
        raise CommandError(problems[0] if problems else f"no webhook {args.id!r} in {directory}")
    return loaded


# -- secrets ----------------------------------------------------------------------------


def _secrets(channel: ChannelConfig, settings: Settings) -> tuple[dict[str, str], dict[str, str]]:
    """Each reference's value as the daemon resolves it, or a placeholder (said on stderr)
    when it cannot be resolved here."""
    from mailhooks.secrets import SecretError, SecretSources, references, resolve_all

    sources = SecretSources.from_process(settings.secrets.dirs)
    resolved: dict[str, str] = {}
    placeholders: dict[str, str] = {}
    for reference in references(channel.secret_texts()):
        try:
            resolved[reference] = resolve_all([reference], sources).text(reference)
        except SecretError as error:
            placeholders[reference] = channel.stand_in(reference, settings) or PLACEHOLDER
            say(f"mailhooks preview: {error}; previewing with a placeholder, shown as {UNRESOLVED}",
                err=True)
    return resolved, placeholders


# -- the sample -------------------------------------------------------------------------


def _message(args: argparse.Namespace, loaded: LoadedWebhook) -> Message:
    """The message the daemon would hand the sender: one sample event, or a batch of
    `--batch` of them (each selected event in turn) for a batching webhook."""
    from mailhooks.channels.base import Message
    from mailhooks.events import Event
    from mailhooks.templates import sample_payload

    batching = loaded.webhook.channel.batching()
    count = args.batch or 1
    if batching is None and args.batch is not None:
        raise CommandError(f"{args.id} does not batch: --batch needs a webhook with batch", USAGE)
    if batching is not None and count > batching.max_events:
        raise CommandError(f"{args.id} sends at most {batching.max_events} events a batch", USAGE)
    selected = loaded.webhook.events
    names: list[EventName] = (
        [args.event] if args.event else list(EVENT_NAMES) if selected == "all" else list(selected)
    )
    events = []
    for number in range(count):
        payload = sample_payload(names[number % len(names)])
        payload.pop("test", None)  # what a real event carries, not the Test button's mark
        payload["event_id"] = f"preview_{uuid.uuid4().hex}"
        if count > 1:
            payload["email"] = f"recipient{number + 1}@example.com"
        events.append(Event.model_validate(payload))
    bodies = [event.payload_json() for event in events]
    payloads = [event.payload() for event in events]
    if batching is None:
        return Message(str(payloads[0]["event_id"]), payloads, bodies[0])
    ids = ",".join(str(payload["event_id"]) for payload in payloads)
    return Message(f"batch_{hashlib.sha256(ids.encode()).hexdigest()[:24]}", payloads,
                   b"[" + b",".join(bodies) + b"]", batched=True)


# -- printing ---------------------------------------------------------------------------


def request_lines(prepared: Prepared, mask: Mask) -> Iterator[str]:
    """The request as a person reads it, every secret masked."""
    url = mask(str(prepared.url))
    if url.startswith((REDACTED, UNRESOLVED)):  # the URL is the secret: its origin is not
        url = f"{prepared.url.origin()}/{url}"
    yield f"{prepared.method} {url}"
    for name, value in prepared.headers.items():
        shown = mask(value)
        if name.lower() == "webhook-signature":
            shown = _SIGNATURE.sub(lambda found: found[1] + REDACTED, shown)
        yield f"{name}: {shown}"
    yield ""
    yield from (mask(line) for line in body_lines(prepared))


def body_lines(prepared: Prepared) -> list[str]:
    """Pretty JSON when the body is JSON; a form's fields one per line; else its text."""
    content_type = prepared.headers.get("Content-Type", "").split(";")[0].strip().lower()
    text = prepared.body.decode("utf-8", errors="replace")
    if content_type == "application/x-www-form-urlencoded":
        return [f"{name}={value}" for name, value in parse_qsl(text, keep_blank_values=True)]
    try:
        value = json.loads(prepared.body)
    except ValueError:
        return text.splitlines()
    return json.dumps(value, indent=2, ensure_ascii=False).splitlines()
