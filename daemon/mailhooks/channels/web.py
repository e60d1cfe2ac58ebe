"""The `web` channel: POST the event (or a batch) as JSON, signed as Standard Webhooks says.

https://www.standardwebhooks.com/ — `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one `v1,…`
per secret while keys rotate.

Errors are one line and name neither header values nor the URL's query string nor a
`Location` (any of them may carry a token).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http
import ssl
import time
from email.utils import parsedate_to_datetime
from typing import Final

import aiohttp
from multidict import CIMultiDict
from yarl import URL

import mailhooks
from mailhooks.channels.base import (
    BODY_EXCERPT_BYTES,
    ChannelContext,
    HttpSender,
    Message,
    Outcome,
    excerpt,
)
from mailhooks.channels.egress import EgressDenied
from mailhooks.reasons import os_reason
from mailhooks.webhooks.models import WebChannel
from mailhooks.webhooks.secrets import Resolved

WHSEC_PREFIX = "whsec_"


class SigningKeyError(ValueError):
    """A `whsec_` secret whose rest is not base64. The message never shows the secret."""


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: base64 after a `whsec_` prefix, else the UTF-8 bytes."""
    if secret.startswith(WHSEC_PREFIX):
        try:
            # Padding is optional, as in the standardwebhooks libraries.
            key = base64.b64decode(secret[len(WHSEC_PREFIX):] + "==")
        except (binascii.Error, ValueError):
            raise SigningKeyError(
                "a secret starting with whsec_ must be base64 after the prefix"
            ) from None
    else:
        key = secret.encode("utf-8")
    if not key:
        raise SigningKeyError("a signing secret cannot be empty")
    return key


def sign(keys: list[hmac.HMAC], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value: `v1,<sig>` per key, space-separated."""
    prefix = f"{message_id}.{timestamp}.".encode()
    return " ".join(
        "v1," + base64.b64encode(hmac_sha256(key, prefix, body)).decode("ascii") for key in keys
    )


def keyed(key: bytes) -> hmac.HMAC:
    """HMAC-SHA256 set up with `key`, to be copied per message: between two requests
    OpenSSL's setup of a new HMAC takes the event loop about 12 µs more than a copy."""
    return hmac.new(key, digestmod=hashlib.sha256)


# OpenSSL's hashing in CPython releases the GIL for inputs of 2 KiB and more (and
# hmac.digest() for any input). Each release lets a spool thread take the GIL, and the
# event loop then waits for it: 0.37 ms for a 2 KiB body beside a busy thread, against
# 0.01 ms in chunks that stay under the limit.
GIL_KEPT_BELOW: Final = 2048


def hmac_sha256(key: hmac.HMAC, *parts: bytes) -> bytes:
    """HMAC-SHA256 of the concatenated parts with a `keyed` HMAC (left as it was),
    computed without releasing the GIL."""
    mac = key.copy()
    for part in parts:
        view = memoryview(part)
        for start in range(0, len(view), GIL_KEPT_BELOW - 1):
            mac.update(view[start:start + GIL_KEPT_BELOW - 1])
    return mac.digest()


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
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
    return max(0.0, seconds)


def status_text(status: int) -> str:
    """`HTTP 503 Service Unavailable`: the standard phrase, never the server's own."""
    try:
        return f"HTTP {status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def seconds_text(seconds: float) -> str:
    return f"{seconds:g}s"


def network_error(error: BaseException, timeout: float) -> str:
    """One line for a failure without an HTTP answer. `str(error)` is avoided on purpose:
    aiohttp's messages may quote the URL, query string included."""
    if isinstance(error, TimeoutError):
        return f"timed out after {seconds_text(timeout)}"
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


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


class WebSender(HttpSender[WebChannel]):
    """Sends messages of one webhook to its HTTP endpoint."""

    def __init__(
        self,
        webhook_id: str,
        channel: WebChannel,
        secrets: Resolved,
        context: ChannelContext,
    ) -> None:
        super().__init__(webhook_id, channel, context, URL(channel.url))
        headers: CIMultiDict[str] = CIMultiDict()
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = f"mailhooks/{mailhooks.__version__}"
        for name, value in (channel.headers or {}).items():
            headers[name] = secrets.text(value)
        self._headers = headers
        raw = channel.secret if isinstance(channel.secret, list) else [channel.secret]
        self._keys = [keyed(signing_key(secrets.text(secret))) for secret in raw if secret]

    def request_headers(self, message: Message, timestamp: int) -> CIMultiDict[str]:
        headers = self._headers.copy()
        # Set last: configured headers cannot replace the Standard Webhooks ones.
        headers["webhook-id"] = message.message_id
        headers["webhook-timestamp"] = str(timestamp)
        if self._keys:
            headers["webhook-signature"] = sign(
                self._keys, message.message_id, timestamp, message.body
            )
        return headers

    async def send(self, message: Message) -> Outcome:
        started = time.perf_counter()

        def elapsed() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        if self._url.scheme.lower() == "http" and not self._context.settings.allow_http:
            return Outcome(
                ok=False, retry=False, duration_ms=elapsed(),
                error="plain http endpoints are not allowed (allow_http is false)",
            )
        if self._denied_literal is not None:
            # An IP literal cannot move; only a config change helps. (A host name that
            # resolves to a denied address is retried: DNS may change its answer.)
            return Outcome(ok=False, retry=False, error=str(self._denied_literal),
                           duration_ms=elapsed())

        headers = self.request_headers(message, int(time.time()))
        status: int | None = None
        try:
            async with self._context.session.post(
                self._url,
                data=message.body,
                headers=headers,
                timeout=self._client_timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                body = await read_excerpt(response.content)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            text = network_error(error, self._timeout)
            if status is not None:
                text = f"{status_text(status)}, then {text}"
            return Outcome(ok=False, retry=True, status=status, error=text, duration_ms=elapsed())
        return classify(status, body, retry_after, elapsed())


def classify(status: int, body: bytes, retry_after: float | None, duration_ms: float) -> Outcome:
    """What an HTTP answer means for a delivery (SPEC §5)."""
    shown = excerpt(body)
    if 200 <= status < 300:
        return Outcome(ok=True, status=status, body_excerpt=shown, duration_ms=duration_ms)
    # Every failure but 410 is retried, other 4xx included (a receiver may be
    # misconfigured for a while); Retry-After is passed on to the dispatcher.
    if 300 <= status < 400:
        error = f"{status_text(status)}: redirect to another URL is not followed"
        return Outcome(
            ok=False, retry=True, status=status, error=error,
            body_excerpt=shown, duration_ms=duration_ms,
        )
    if status == 410:
        return Outcome(
            ok=False, retry=False, status=status,
            error=f"{status_text(status)}: the endpoint is gone, retries end",
            body_excerpt=shown, duration_ms=duration_ms,
        )
    return Outcome(
        ok=False, retry=True, status=status, error=status_text(status),
        retry_after=retry_after, body_excerpt=shown, duration_ms=duration_ms,
    )
