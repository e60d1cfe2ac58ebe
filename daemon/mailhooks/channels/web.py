"""The `web` channel: POST the event (or a batch) as JSON, signed as Standard Webhooks says.

Errors are one line and name neither header values nor the URL's query string nor a
`Location` (any of them may carry a token).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from multidict import CIMultiDict
from pydantic import Field
from yarl import URL

import mailhooks
from mailhooks.channels.base import ChannelKind, CheckOptions, Message, Outcome, WebhookRef
from mailhooks.channels.config import (
    MAX_URL_LENGTH,
    URL_PATTERN,
    Batch,
    ChannelConfig,
    SecretRef,
    origin,
    without_query,
)
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.http import Answer, HttpSender, Request, parse_retry_after, status_text
from mailhooks.channels.signing import keyed, sign, signing_key
from mailhooks.documents.positions import SchemaProblem
from mailhooks.secrets import HOW_TO_REFERENCE, Resolved, contains_reference, is_reference
from mailhooks.settings import Settings

MAX_HEADERS: Final = 20
MAX_HEADER_VALUE_LENGTH: Final = 1024
MAX_SECRETS: Final = 5
HEADER_NAME_PATTERN: Final = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$"


class WebChannel(ChannelConfig):
    """POST each event as JSON to an HTTP endpoint, signed as Standard Webhooks says."""

    type: Literal["web"] = Field(description="An HTTP(S) endpoint.")
    url: str = Field(
        min_length=1, max_length=MAX_URL_LENGTH, pattern=URL_PATTERN,
        description="The endpoint; https, or http when the daemon's config sets allow_http.",
    )
    headers: dict[
        Annotated[str, Field(pattern=HEADER_NAME_PATTERN)],
        Annotated[str, Field(max_length=MAX_HEADER_VALUE_LENGTH)],
    ] | None = Field(
        default=None, max_length=MAX_HEADERS,
        description="Extra request headers; credentials as ${env:…}/${file:…}/${credential:…}.",
    )
    secret: SecretRef | Annotated[list[SecretRef], Field(min_length=1, max_length=MAX_SECRETS)] | None = Field(  # noqa: E501
        default=None,
        description="Signing secret reference, or a list of them while rotating keys.",
    )
    batch: Batch | None = Field(default=None, description="Send events in batches.")

    def secret_texts(self) -> list[str]:
        texts = list((self.headers or {}).values())
        if isinstance(self.secret, str):
            texts.append(self.secret)
        elif self.secret:
            texts.extend(self.secret)
        return texts

    def batching(self) -> Batch | None:
        return self.batch

    def endpoint(self) -> str:
        return without_query(self.url)

    def destinations(self, settings: Settings) -> list[str]:
        return [origin(self.url)]


# --- checks the schema cannot express -------------------------------------------------

# Header names whose values are credentials: these must be references, never literals.
_CREDENTIAL_HEADER: Final = re.compile(
    r"authorization|cookie|token|secret|password|passwd|api[-_]?key|auth|signature|session",
    re.IGNORECASE,
)
_RESERVED_HEADERS: Final = frozenset({
    "content-type", "content-length", "host", "transfer-encoding", "connection",
    "webhook-id", "webhook-timestamp", "webhook-signature",
})
_ANY_REFERENCE: Final = re.compile(r"\$\{([^}]*)\}")


def check(channel: dict[str, Any], options: CheckOptions) -> Iterator[SchemaProblem]:
    if isinstance(channel.get("url"), str):
        yield from _check_url(channel["url"], allow_http=options.allow_http)
    if isinstance(channel.get("headers"), dict):
        yield from _check_headers(channel["headers"])


def _check_url(url: str, *, allow_http: bool) -> Iterator[SchemaProblem]:
    where = ("channel", "url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as error:
        yield SchemaProblem(where, f"channel.url: not a valid URL ({error})")
        return
    if parts.scheme.lower() == "http" and not allow_http:
        yield SchemaProblem(
            where,
            "channel.url: plain http is not allowed; use https, "
            "or set allow_http: true in the daemon's config",
        )
    if not parts.hostname:
        yield SchemaProblem(where, "channel.url: no host name")
    if parts.username or parts.password:
        yield SchemaProblem(
            where, "channel.url: no credentials in the URL; send them in headers as references"
        )
    if parts.fragment:
        yield SchemaProblem(where, "channel.url: a URL fragment (#…) is never sent; remove it")
    if contains_reference(url):
        yield SchemaProblem(where, "channel.url: no secret references in the URL; use headers")


def _check_headers(headers: dict[str, Any]) -> Iterator[SchemaProblem]:
    for name, value in headers.items():
        where = ("channel", "headers", name)
        if name.lower() in _RESERVED_HEADERS:
            yield SchemaProblem(
                where, f"channel.headers.{name}: set by mailhooks, cannot be configured",
                at_key=True,
            )
            continue
        if not isinstance(value, str):
            continue
        unknown = [ref[0] for ref in _ANY_REFERENCE.finditer(value) if not is_reference(ref[0])]
        for reference in unknown:
            yield SchemaProblem(
                where, f"channel.headers.{name}: {reference} is not a reference mailhooks "
                f"knows; {HOW_TO_REFERENCE}",
            )
        # An unknown reference is reported above; calling it a literal too would be noise.
        if _CREDENTIAL_HEADER.search(name) and not unknown and not contains_reference(value):
            yield SchemaProblem(
                where, f"channel.headers.{name}: a literal credential is not allowed; "
                f"{HOW_TO_REFERENCE}",
            )


# --- sending ----------------------------------------------------------------------------


class WebSender(HttpSender):
    """Sends messages of one webhook to its HTTP endpoint."""

    def __init__(
        self, webhook: WebhookRef, channel: WebChannel, secrets: Resolved, context: ChannelContext
    ) -> None:
        super().__init__(KIND, webhook, context, URL(channel.url), channel.timeout, secrets)
        self._plain_http_refused = (
            self._url.scheme.lower() == "http" and not context.settings.allow_http
        )
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

    def refuse(self) -> Outcome | None:
        if self._plain_http_refused:
            return Outcome(ok=False, retry=False,
                           error="plain http endpoints are not allowed (allow_http is false)")
        return super().refuse()

    def build(self, message: Message) -> Request:
        return Request(body=message.body, headers=self.request_headers(message, int(time.time())))

    def classify(self, answer: Answer, duration_ms: float) -> Outcome:
        return classify(answer.status, self.excerpt(answer), answer.headers.get("Retry-After"),
                        duration_ms)


def classify(status: int, shown: str, retry_after: str | None, duration_ms: float) -> Outcome:
    """What an HTTP answer means for a delivery (SPEC §5)."""
    if 200 <= status < 300:
        return Outcome(ok=True, status=status, body_excerpt=shown, duration_ms=duration_ms)
    # Every failure but 410 is retried, other 4xx included (a receiver may be
    # misconfigured for a while); Retry-After is passed on to the dispatcher.
    if 300 <= status < 400:
        error = f"{status_text(status)}: redirect to another URL is not followed"
        return Outcome(ok=False, retry=True, status=status, error=error,
                       body_excerpt=shown, duration_ms=duration_ms)
    if status == 410:
        return Outcome(ok=False, retry=False, status=status,
                       error=f"{status_text(status)}: the endpoint is gone, retries end",
                       body_excerpt=shown, duration_ms=duration_ms)
    return Outcome(ok=False, retry=True, status=status, error=status_text(status),
                   retry_after=parse_retry_after(retry_after), body_excerpt=shown,
                   duration_ms=duration_ms)


KIND: Final = ChannelKind(type="web", config=WebChannel, sender=WebSender, concurrency=8,
                          connections=256, check=check)
