"""`mailhooks listen [--port N] [--secret REF] [--answer CODE]`: a local receiver for
development, as `stripe listen` and the Svix CLI give. Prints each delivery (the headers
of interest, the body pretty-printed), says whether its Standard Webhooks signature
verifies and why not, and answers 200, or `--answer CODE` to try the daemon's retries.
Ctrl-C stops it, exit 0 (SPEC §7)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from mailhooks.channels.config import CREDENTIAL_HEADER
from mailhooks.cli.common import USAGE, CommandError, say, settings_of, shared
from mailhooks.text import REDACTED

if TYPE_CHECKING:
    import hmac

    from mailhooks.listen import Delivery

DEFAULT_PORT: Final = 8426
# The headers a receiver's author looks at; the others are listed by name only.
SHOWN_HEADERS: Final = ("content-type", "user-agent", "webhook-id", "webhook-timestamp",
                        "webhook-signature")
MAX_BODY_LINES: Final = 200
SIGNATURE_SHOWN: Final = 12  # characters of each signature shown after `v1,`


def _number(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not {what}")
        return value

    return parse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "listen", help="a local receiver for development: prints and verifies each delivery"
    )
    shared(parser)
    parser.add_argument("--port", type=_number(0, 65535, "a port from 0 to 65535"),
                        default=DEFAULT_PORT,
                        help=f"the port (default: {DEFAULT_PORT}); 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to listen on (default: 127.0.0.1)")
    parser.add_argument("--secret", metavar="REF",
                        help="the webhook's signing secret as a reference: ${env:NAME}, "
                             "${file:/path} or ${credential:NAME}, never the secret itself; "
                             "without it signatures are not checked")
    parser.add_argument("--answer", type=_number(200, 599, "an HTTP status from 200 to 599"),
                        default=200, metavar="CODE",
                        help="the status every request gets (default: 200); 500, 410 or 429 "
                             "show the daemon's retries")
    parser.add_argument("--retry-after", type=_number(0, 86400, "seconds from 0 to 86400"),
                        metavar="S", help="send Retry-After: S with every answer (with 429 or 503)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per delivery (NDJSON) on stdout, for scripts")
    parser.set_defaults(run=run)


def signing_key_of(args: argparse.Namespace) -> hmac.HMAC | None:
    """The HMAC of `--secret`, resolved as webhook files' references are. A literal is
    refused: it would stay in the shell's history and show in `ps`."""
    from mailhooks.channels.signing import SigningKeyError, keyed, signing_key
    from mailhooks.secrets import SecretError, SecretSources, is_reference, resolve

    reference: str | None = args.secret
    if reference is None:
        return None
    if not is_reference(reference):
        raise CommandError("--secret takes a reference (${env:NAME}, ${file:/path} or "
                           "${credential:NAME}), never the secret itself: a secret on the "
                           "command line stays in the shell's history and shows in ps", USAGE)
    settings = settings_of(args)
    try:
        secret = resolve(reference, SecretSources.from_process(settings.secrets.dirs))
        return keyed(signing_key(secret))
    except SecretError as error:
        raise CommandError(f"--secret {error}", USAGE) from None
    except SigningKeyError as error:
        raise CommandError(f"--secret {reference}: {error}", USAGE) from None


def run(args: argparse.Namespace) -> int:
    key = signing_key_of(args)
    return asyncio.run(_listen(args, key))


async def _listen(args: argparse.Namespace, key: hmac.HMAC | None) -> int:
    # Imported here: every other command starts without the receiver.
    from mailhooks.listen import Answer, application, start

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    received = 0

    def show(delivery: Delivery) -> None:
        nonlocal received
        received += 1
        try:
            if args.json:
                # ensure_ascii escapes all but DEL, which a terminal should not see raw either.
                print(json.dumps(record(delivery)).replace("\x7f", "\\u007f"))
            else:
                for line in lines(delivery):
                    say(line)
            sys.stdout.flush()
        except BrokenPipeError:  # `mailhooks listen --json | head -1`: done reading
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            stop.set()

    app = application(key, Answer(args.answer, args.retry_after), show)
    try:
        runner, port = await start(app, args.host, args.port)
    except OSError as error:
        # aiohttp's message repeats the address; the errno says it shortly.
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {reason}", USAGE) from None
    host = f"[{args.host}]" if ":" in args.host else args.host
    retry_after = f", Retry-After: {args.retry_after}" if args.retry_after is not None else ""
    banner = [
        f"mailhooks listen: listening on http://{host}:{port}/",
        f"  signatures: checked with {args.secret}" if key is not None
        else "  signatures: not checked (no --secret)",
        f"  answering:  {args.answer}{retry_after}",
        "  Ctrl-C to stop",
    ]
    for line in banner:
        say(line, err=args.json)
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    say(f"mailhooks listen: stopped after {received} request(s)", err=args.json)
    return 0


def _local(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).astimezone().isoformat(sep=" ", timespec="seconds")


def verdict_words(delivery: Delivery) -> str:
    verdict = delivery.verdict
    return verdict.text if verdict.ok or verdict.kind == "not_checked" else f"NOT VERIFIED: {verdict.text}"


def lines(delivery: Delivery) -> list[str]:
    """A delivery for a person: one line that says what arrived and whether it verifies,
    the headers of interest, the body, and the answer."""
    arrived = time.strftime("%H:%M:%S", time.localtime(delivery.received_at))
    target = delivery.path + (f"?{delivery.query}" if delivery.query else "")
    summary = [f"{arrived} {delivery.method} {target}"]
    message_id, sent = delivery.header("webhook-id"), delivery.sent_at()
    if message_id is not None:
        summary.append(f"id {message_id}")
    if sent is not None:
        summary.append(f"sent {datetime.fromtimestamp(sent):%Y-%m-%d %H:%M:%S}")
    summary.append(verdict_words(delivery))
    shown = [" | ".join(summary)]
    for name in SHOWN_HEADERS:
        value = delivery.header(name)
        if value is None:
            continue
        if name == "webhook-timestamp" and sent is not None:
            value = f"{value} ({_local(sent)})"
        elif name == "webhook-signature":
            value = _shortened(value)
        shown.append(f"  {name}: {value}")
    others = sorted({name for name, _ in delivery.headers} - set(SHOWN_HEADERS))
    if others:
        shown.append(f"  other headers: {', '.join(others)}")
    body = body_lines(delivery)
    if len(body) > MAX_BODY_LINES:
        body = [*body[:MAX_BODY_LINES], f"… {len(body) - MAX_BODY_LINES} more lines (--json shows all)"]
    shown.extend(f"  {line}" for line in body)
    answer = delivery.answer
    retry_after = f", Retry-After: {answer.retry_after}" if answer.retry_after is not None else ""
    shown.append(f"  answered {answer.status}{retry_after}")
    shown.append("")
    return shown


def _shortened(header: str) -> str:
    parts = header.split()
    short = [part if len(part) <= len("v1,") + SIGNATURE_SHOWN else part[:len("v1,") + SIGNATURE_SHOWN] + "…"
             for part in parts]
    return f"{' '.join(short)} ({len(parts)} signature{'s' if len(parts) != 1 else ''})"


def body_lines(delivery: Delivery) -> list[str]:
    kind, value = delivery.body_as()
    if kind == "empty":
        return ["(no body)"]
    if kind == "json":
        return json.dumps(value, indent=2, ensure_ascii=False).splitlines()
    if kind == "form":
        return [f"{name} = {field}" for name, field in value] or ["(an empty form)"]
    text: str = value
    return text.splitlines() or [""]


def record(delivery: Delivery) -> dict[str, Any]:
    """A delivery for a script: one JSON object."""
    kind, value = delivery.body_as()
    headers: dict[str, str] = {}
    for name, field in delivery.headers:
        if CREDENTIAL_HEADER.search(name) and not name.startswith("webhook-"):
            field = REDACTED  # an API key or a token the webhook sends: its name says enough
        headers[name] = f"{headers[name]}, {field}" if name in headers else field
    return {
        "number": delivery.number,
        "received_at": datetime.fromtimestamp(delivery.received_at, UTC).isoformat(),
        "method": delivery.method,
        "path": delivery.path,
        "query": delivery.query,
        "headers": headers,
        "webhook_id": delivery.header("webhook-id"),
        "webhook_timestamp": delivery.sent_at(),
        "signature": {"verdict": delivery.verdict.kind, "text": delivery.verdict.text,
                      "checked": delivery.verdict.checked},
        "body_format": kind,
        "body": dict(value) if kind == "form" else value,
        "answered": delivery.answer.status,
    }
