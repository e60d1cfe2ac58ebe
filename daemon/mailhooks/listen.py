"""`mailhooks listen`'s receiver: a local endpoint for development that keeps nothing,
checks each request's Standard Webhooks signature and answers as it is told to.

The check is a pure function, `verify`, whose `Verdict` says in words what a receiver's
library would refuse and why. The receiver hands each request to a callback as a
`Delivery`; the command prints it (`mailhooks.cli.listen`).
"""

from __future__ import annotations

import hmac
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

from aiohttp import web

from mailhooks.channels.signing import signatures

# Standard Webhooks' libraries refuse a timestamp more than 5 minutes away from their clock,
# either way: an old one may be a replay.
TOLERANCE: Final = 300
# 9999-12-30T23:59:59Z: the last second every time zone can show as a date of year 9999.
LAST_SECOND: Final = 253402214399
# A batch of the daemon's is at most a few MiB; a larger request is answered 413 unread.
MAX_BODY_BYTES: Final = 64 * 1048576
SIGNATURE_VERSION: Final = "v1,"

VerdictKind = Literal["valid", "not_checked", "no_signature", "mismatch", "timestamp", "malformed"]


@dataclass(frozen=True)
class Verdict:
    """What the signature check found: `kind` for scripts, `text` for people, and how
    many `v1,` signatures were compared."""

    kind: VerdictKind
    text: str
    checked: int = 0

    @property
    def ok(self) -> bool:
        return self.kind == "valid"


NOT_CHECKED: Final = Verdict("not_checked", "signature not checked (no --secret)")


def verify(key: hmac.HMAC | None, message_id: str | None, timestamp: str | None,
           signature: str | None, body: bytes, now: float) -> Verdict:
    """Check a request's `webhook-signature` against `key` (a `signing.keyed` HMAC) as the
    Standard Webhooks libraries do: an HMAC-SHA256 of "{id}.{timestamp}.{body}", any one
    `v1,` signature of the space-separated list matching, and a timestamp within 5 minutes
    of `now`. A mismatch is reported before the timestamp: an old request with a matching
    signature is a replay, which says more than a bad one that is also old."""
    if key is None:
        return NOT_CHECKED
    if not signature:
        return Verdict("no_signature", "not signed: no webhook-signature header")
    missing = [name for name, value in (("webhook-id", message_id), ("webhook-timestamp", timestamp))
               if not value]
    if missing or message_id is None or timestamp is None:
        return Verdict("malformed", f"malformed headers: no {' and no '.join(missing)}")
    sent = unix_seconds(timestamp)
    if sent is None:
        return Verdict("malformed", f"malformed headers: webhook-timestamp {timestamp[:40]!r} "
                                    "is not unix seconds")
    given = [part.removeprefix(SIGNATURE_VERSION) for part in signature.split()
             if part.startswith(SIGNATURE_VERSION)]
    if not given:
        return Verdict("malformed", "malformed headers: webhook-signature has no v1,… signature")
    expected = signatures([key], message_id, sent, body)[0].removeprefix(SIGNATURE_VERSION).encode()
    checked = len(given)
    if not any(hmac.compare_digest(expected, candidate.encode()) for candidate in given):
        several = f" ({checked} v1 signatures checked)" if checked > 1 else ""
        return Verdict("mismatch", "the signature does not match: a wrong secret, "
                                   f"or the body changed on the way{several}", checked)
    age = now - sent
    if age > TOLERANCE:
        return Verdict("timestamp", f"signature matches but the timestamp is too old: sent "
                                    f"{age:.0f} s before it arrived (the tolerance is "
                                    f"{TOLERANCE} s)", checked)
    if age < -TOLERANCE:
        return Verdict("timestamp", f"signature matches but the timestamp is in the future: "
                                    f"{-age:.0f} s ahead of this clock (the tolerance is "
                                    f"{TOLERANCE} s)", checked)
    several = f" (1 of {checked} v1 signatures matched)" if checked > 1 else ""
    return Verdict("valid", f"signature verified{several}", checked)


def unix_seconds(text: str) -> int | None:
    """Unix seconds written as digits, up to `LAST_SECOND` (what a date can show); None
    for anything else, however many digits a sender wrote."""
    if not text.isascii() or not text.isdigit() or len(text) > len(str(LAST_SECOND)):
        return None
    seconds = int(text)
    return seconds if seconds <= LAST_SECOND else None


@dataclass(frozen=True)
class Answer:
    """What every request is answered with: `--answer CODE`, `--retry-after S`."""

    status: int = 200
    retry_after: int | None = None


@dataclass(frozen=True)
class Delivery:
    """One request as it arrived, its verdict, and the status it was answered with."""

    number: int
    received_at: float
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]  # names in lower case, in the order received
    body: bytes
    verdict: Verdict
    answer: Answer

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lower case), or None."""
        return next((value for key, value in self.headers if key == name), None)

    def sent_at(self) -> int | None:
        """`webhook-timestamp` as unix seconds, when it is one."""
        stamp = self.header("webhook-timestamp")
        return None if stamp is None else unix_seconds(stamp)

    def body_as(self) -> tuple[Literal["empty", "json", "form", "text"], Any]:
        """The body decoded: JSON (any content type, as receivers parse it), a form's
        fields in order, or text (undecodable bytes replaced)."""
        if not self.body:
            return "empty", None
        text = self.body.decode("utf-8", errors="replace")
        try:
            return "json", json.loads(self.body)
        except ValueError:
            pass
        content_type = (self.header("content-type") or "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            return "form", parse_qsl(text, keep_blank_values=True)
        return "text", text


def application(key: hmac.HMAC | None, answer: Answer, on_delivery: Callable[[Delivery], None],
                clock: Callable[[], float] = time.time) -> web.Application:
    """Every method on every path is a delivery: verified, handed to `on_delivery`, and
    answered with `answer`."""
    numbers = itertools.count(1)

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        now = clock()
        headers = tuple((name.lower(), value) for name, value in request.headers.items())
        verdict = verify(key, request.headers.get("webhook-id"),
                         request.headers.get("webhook-timestamp"),
                         request.headers.get("webhook-signature"), body, now)
        on_delivery(Delivery(next(numbers), now, request.method, request.path,
                             request.query_string, headers, body, verdict, answer))
        extra = {} if answer.retry_after is None else {"Retry-After": str(answer.retry_after)}
        text = "ok\n" if answer.status < 300 else f"mailhooks listen answers {answer.status} (--answer)\n"
        return web.Response(status=answer.status, text=text, headers=extra)

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_route("*", "/{tail:.*}", receive)
    return app


async def start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve `app` on `host`:`port` (0: a free port); the runner and the port bound.
    Raises OSError when the address cannot be had."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound: int = runner.addresses[0][1]
    return runner, bound
