"""What every channel over HTTP shares: one request per message, its answer read within a
bound, and every failure said in one line that names no secret.

A channel subclasses `HttpSender` and supplies two things: how it builds the request of
a message (`build`) and what an answer means (`classify`). Sending, timing, the egress
check on an IP literal, reading a bounded excerpt of the answer and turning network
errors into text happen here once. `prepare` makes the request without sending it, for
`mailhooks preview`.
"""

from __future__ import annotations

import http
import ipaddress
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import urlencode

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from mailhooks.channels.base import ChannelKind, Message, Outcome, WebhookRef
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.egress import EgressDenied, EgressPolicy
from mailhooks.masking import Mask
from mailhooks.reasons import os_reason
from mailhooks.secrets import Resolved
from mailhooks.text import REDACTED

BODY_EXCERPT_BYTES: Final = 512
# A shorter secret is not scrubbed: it would match ordinary text everywhere.
MIN_SCRUBBED: Final = 4
# A `Retry-After` longer than this counts as this (SPEC §5): an answer cannot park a
# delivery for centuries.
MAX_RETRY_AFTER: Final = 86400.0


@dataclass(frozen=True)
class Request:
    """One HTTP POST: a body (bytes, sent as they are) or a form (encoded by aiohttp)."""

    body: bytes | None = None
    form: Mapping[str, str] | None = None
    headers: Mapping[str, str] | None = None
    url: URL | None = None  # the sender's URL unless given


@dataclass(frozen=True)
class Prepared:
    """A request as `send` would make it, not sent: its URL, the headers the channel sets
    (a form's Content-Type as aiohttp adds it) and the body's bytes. Holds secrets."""

    method: str
    url: URL
    headers: CIMultiDict[str]
    body: bytes


FORM_TYPE: Final = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes  # at most the sender's `answer_limit` bytes of it
    # Whether the peer was a public address: an answer from a private one (a service
    # reached through egress.allow) is never shown beyond its status.
    public_peer: bool


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date), at
    most a day."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, inf
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def status_text(status: int) -> str:
    """`HTTP 503 Service Unavailable`: the standard phrase, never the server's own."""
    try:
        return f"HTTP {status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def network_error(error: BaseException, timeout: float) -> str:
    """One line for a failure without an HTTP answer. `str(error)` is avoided on purpose:
    aiohttp's messages may quote the URL, query string included."""
    if isinstance(error, TimeoutError):
        return f"timed out after {timeout:g}s"
    if isinstance(error, EgressDenied):
        return str(error)
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate verification failed"
    if isinstance(error, aiohttp.ClientSSLError | ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        cause = error.os_error
        if isinstance(cause, EgressDenied):
            return str(cause)
        return f"DNS lookup failed: {os_reason(cause)}"
    if isinstance(error, aiohttp.ClientConnectorError):
        cause = error.os_error
        if isinstance(cause, EgressDenied):
            return str(cause)
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        return f"cannot connect: {os_reason(cause)}"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(error, aiohttp.ClientPayloadError):
        return "the connection broke while reading the answer"
    if isinstance(error, aiohttp.ClientOSError | OSError):
        return f"connection error: {os_reason(error)}"
    return f"request failed: {type(error).__name__}"


async def read_excerpt(content: aiohttp.StreamReader, limit: int = BODY_EXCERPT_BYTES) -> bytes:
    """At most `limit` bytes of a response body; the rest is never read."""
    if content.is_eof():  # the whole answer is in already, as a short one usually is
        return content.read_nowait(limit)
    data = bytearray()
    while len(data) < limit:
        chunk = await content.read(limit - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _public_peer(response: aiohttp.ClientResponse) -> bool:
    connection = response.connection
    transport = connection.transport if connection is not None else None
    peer = transport.get_extra_info("peername") if transport is not None else None
    if not peer:
        return False
    try:
        return ipaddress.ip_address(str(peer[0]).split("%", 1)[0]).is_global
    except ValueError:
        return False


class HttpSender:
    """A channel that POSTs one request per message. Subclasses pass their `ChannelKind`
    and implement `build` and `classify`; `refuse` and `unanswered` have defaults."""

    # How much of an answer is read: enough to classify it and show an excerpt.
    answer_limit: int = BODY_EXCERPT_BYTES

    def __init__(
        self, kind: ChannelKind, webhook: WebhookRef, context: ChannelContext, url: URL,
        timeout: float | None, secrets: Resolved,
    ) -> None:
        self.kind = kind
        self.webhook = webhook
        self.webhook_id = webhook.id
        self.rate_key = f"{self.kind.type}:{webhook.id}"
        self._context = context
        self._url = url
        self._secrets = secrets
        self._mask: Mask | None = None  # made on the first scrub: most senders never need one
        self._timeout = timeout or context.settings.timeout
        self._client_timeout = aiohttp.ClientTimeout(total=self._timeout)
        self._egress = EgressPolicy.from_settings(context.settings)
        # An IP literal in the URL is checked once; host names are checked on every
        # connection, on the address they resolve to.
        self._denied_literal: EgressDenied | None = None
        try:
            self._egress.check_host(url.host)
        except EgressDenied as denied:
            self._denied_literal = denied

    def __repr__(self) -> str:
        # Never the URL: a query string or a path may carry a token.
        return f"{type(self).__name__}({self.webhook_id!r})"

    # -- what a channel supplies ---------------------------------------------------------

    def build(self, message: Message) -> Request | Outcome:
        """The request of `message`, or an Outcome when it cannot be sent at all."""
        raise NotImplementedError

    def classify(self, answer: Answer, duration_ms: float) -> Outcome:
        """What an answer means for the delivery."""
        raise NotImplementedError

    def refuse(self) -> Outcome | None:
        """An Outcome when nothing may be sent (a denied IP literal: only a config change
        helps)."""
        if self._denied_literal is not None:
            return Outcome(ok=False, retry=False, error=str(self._denied_literal))
        return None

    def unanswered(self, reason: str, status: int | None, duration_ms: float) -> Outcome:
        """A request that got no (whole) answer: retried."""
        return Outcome(ok=False, retry=True, status=status, error=reason, duration_ms=duration_ms)

    def observe(self, headers: CIMultiDictProxy[str]) -> None:
        """Headers of every answer, for channels that report from them (a quota)."""

    # -- shared --------------------------------------------------------------------------

    def request(self, message: Message) -> Request | Outcome:
        """The request of `message`, or the Outcome that says why nothing goes (a
        refusal, a template that fails)."""
        refused = self.refuse()
        return refused if refused is not None else self.build(message)

    def prepare(self, message: Message) -> Prepared | Outcome:
        """The request `send` would make for `message`, without sending it, as bytes."""
        built = self.request(message)
        if isinstance(built, Outcome):
            return built
        headers: CIMultiDict[str] = CIMultiDict(built.headers or {})
        body = built.body
        if body is None:  # encoded as aiohttp encodes a form
            body = urlencode(list((built.form or {}).items()), doseq=True).encode()
            headers.setdefault("Content-Type", FORM_TYPE)
        return Prepared("POST", built.url or self._url, headers, body)

    def scrub(self, text: str) -> str:
        """`text` (an answer, an error) with every secret of this webhook redacted, in any
        form a receiver may echo it (JSON-escaped, percent-encoded…): whoever runs the
        Test button or reads the log must not get them."""
        if self._mask is None:
            self._mask = Mask(value for value in self._secrets.values() if len(value) >= MIN_SCRUBBED)
        text = self._mask(text)
        for value in self._secrets.values():
            # An excerpt cut inside a secret must not end with its first characters.
            for length in range(len(value) - 1, MIN_SCRUBBED - 1, -1):
                if text.endswith(value[:length]):
                    text = text[:-length] + REDACTED
                    break
        return text

    def excerpt(self, answer: Answer) -> str:
        """What may be shown of an answer: its first bytes, scrubbed, and nothing of an
        answer from a private address."""
        if not answer.public_peer:
            return ""
        return self.scrub(answer.body[:BODY_EXCERPT_BYTES].decode("utf-8", errors="replace"))

    async def send(self, message: Message) -> Outcome:
        started = time.perf_counter()

        def elapsed() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        built = self.request(message)
        if isinstance(built, Outcome):
            return built
        status: int | None = None
        try:
            async with self._context.session(self.kind.type, self.kind.connections).post(
                built.url or self._url,
                data=built.body if built.body is not None else built.form,
                headers=built.headers,
                timeout=self._client_timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                self.observe(response.headers)
                body = await read_excerpt(response.content, self.answer_limit)
                answer = Answer(status, CIMultiDictProxy(CIMultiDict(response.headers)), body,
                                _public_peer(response))
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            text = network_error(error, self._timeout)
            if status is not None:
                text = f"{status_text(status)}, then {text}"
            return self.unanswered(text, status, elapsed())
        return self.classify(answer, elapsed())
