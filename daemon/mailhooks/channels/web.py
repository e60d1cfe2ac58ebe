"""The `web` channel: POST the event (or a batch) as JSON, signed as Standard Webhooks says.

Without `payload` the body is the event as spooled, byte for byte, and sending it costs
no template work. With `payload` (a mapping whose string leaves are templates, compiled
once per sender) the body is the payload rendered for the event: JSON (an array of them
for a batch), or with `content_type: form` its fields form-encoded. With `envelope`, a
batch's body is that mapping rendered once for the batch instead of the array, its
`events` being what the array would have held. Either way the signature is over the exact
bytes sent.

Errors are one line and name neither header values nor the URL's query string nor a
`Location` (any of them may carry a token).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode, urlsplit

from multidict import CIMultiDict
from pydantic import Field
from pydantic_core import PydanticSerializationError, to_json
from yarl import URL

import mailhooks
from mailhooks.channels.base import ChannelKind, CheckOptions, Message, Outcome, WebhookRef
from mailhooks.channels.config import (
    CREDENTIAL_HEADER,
    MAX_URL_LENGTH,
    URL_PATTERN,
    Batch,
    ChannelConfig,
    SecretRef,
    TemplateField,
    origin,
    without_query,
)
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.http import (
    FORM_TYPE,
    Answer,
    HttpSender,
    Request,
    parse_retry_after,
    status_text,
)
from mailhooks.channels.signing import keyed, sign, signing_key
from mailhooks.documents.positions import SchemaProblem
from mailhooks.secrets import HOW_TO_REFERENCE, Resolved, contains_reference, is_reference
from mailhooks.settings import Settings
from mailhooks.templates import (
    PayloadTemplate,
    TemplateError,
    batch_variables,
    compile_payload,
    event_variables,
)
from mailhooks.text import one_line

MAX_HEADERS: Final = 20
MAX_HEADER_VALUE_LENGTH: Final = 1024
MAX_SECRETS: Final = 5
HEADER_NAME_PATTERN: Final = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$"
MAX_PAYLOAD_KEYS: Final = 200
CONTENT_TYPES: Final = {"json": "application/json", "form": FORM_TYPE}


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
    payload: dict[str, Any] | None = Field(
        default=None, min_length=1, max_length=MAX_PAYLOAD_KEYS,
        description="The body instead of the event: a mapping whose string values are templates "
        "(`{{ field }}` alone keeps the field's type; `| int`, `| float`, `| bool` make one).",
    )
    envelope: dict[str, Any] | None = Field(
        default=None, min_length=1, max_length=MAX_PAYLOAD_KEYS,
        description="With batch: the body of a batch instead of a JSON array, a mapping whose "
        "string values are templates rendered once for the batch; `events` is what the array "
        "would hold (each event's payload, or the event), `count` how many.",
    )
    content_type: Literal["json", "form"] | None = Field(
        default=None,
        description="json (the default): the body is JSON. form: the payload's fields, "
        "form-encoded (application/x-www-form-urlencoded); needs a payload of scalars, no batch.",
    )

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

    def templates(self) -> list[TemplateField]:
        fields = []
        if self.payload is not None:
            fields.append(TemplateField(("channel", "payload"), self.payload, "json", payload=True))
        if self.envelope is not None:
            fields.append(TemplateField(("channel", "envelope"), self.envelope, "json", payload=True,
                                        per_batch=True, items=fields[0].path if fields else None))
        return fields

    def destinations(self, settings: Settings) -> list[str]:
        return [origin(self.url)]


# --- checks the schema cannot express -------------------------------------------------

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
    if channel.get("content_type") == "form":
        yield from _check_form(channel)
    elif channel.get("envelope") is not None and channel.get("batch") is None:
        yield SchemaProblem(("channel", "envelope"),
                            "channel.envelope: the body of a batch needs batch; without it, use payload")


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
        if CREDENTIAL_HEADER.search(name) and not unknown and not contains_reference(value):
            yield SchemaProblem(
                where, f"channel.headers.{name}: a literal credential is not allowed; "
                f"{HOW_TO_REFERENCE}",
            )


def _check_form(channel: dict[str, Any]) -> Iterator[SchemaProblem]:
    """A form is one flat set of fields: a payload of scalars, one event a request."""
    payload = channel.get("payload")
    if payload is None:
        yield SchemaProblem(("channel", "content_type"),
                            "channel.content_type: form needs a payload: the fields to send")
    elif isinstance(payload, dict):
        for key, value in payload.items():
            if isinstance(value, dict | list):
                what = "a mapping" if isinstance(value, dict) else "a list"
                yield SchemaProblem(
                    ("channel", "payload", key),
                    f"channel.payload.{key}: a form field must be text, a number, a boolean or "
                    f"null, not {what} (nesting needs content_type: json)",
                )
    if channel.get("batch") is not None:
        yield SchemaProblem(
            ("channel", "batch"),
            "channel.batch: a form body holds one event; remove batch or use content_type: json "
            "(a JSON array of payloads)",
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
        headers["Content-Type"] = CONTENT_TYPES[channel.content_type or "json"]
        headers["User-Agent"] = f"mailhooks/{mailhooks.__version__}"
        for name, value in (channel.headers or {}).items():
            headers[name] = secrets.text(value)
        self._headers = headers
        raw = channel.secret if isinstance(channel.secret, list) else [channel.secret]
        self._keys = [keyed(signing_key(secrets.text(secret))) for secret in raw if secret]
        self._form = channel.content_type == "form"
        self._payload = _compiled(webhook, "payload", channel.payload)
        self._envelope = _compiled(webhook, "envelope", channel.envelope)
        self._templated = self._payload is not None or self._envelope is not None

    def request_headers(self, message: Message, body: bytes, timestamp: int) -> CIMultiDict[str]:
        headers = self._headers.copy()
        # Set last: configured headers cannot replace the Standard Webhooks ones.
        headers["webhook-id"] = message.message_id
        headers["webhook-timestamp"] = str(timestamp)
        if self._keys:
            headers["webhook-signature"] = sign(self._keys, message.message_id, timestamp, body)
        return headers

    def render(self, event: Mapping[str, Any]) -> Any:
        """The payload for one event (raises TemplateError)."""
        assert self._payload is not None
        return self._payload.render(
            event_variables(event, webhook_id=self.webhook.id, webhook_name=self.webhook.name))

    def body(self, message: Message) -> bytes:
        """The bytes to send: the spooled body as it is without templates; else the payload
        rendered for each event, and a batch's in its envelope (raises TemplateError)."""
        if not self._templated:
            return message.body
        if message.batched:
            if self._payload is None:
                items: list[Any] = [dict(event) for event in message.events]
            else:
                items = [self.render(event) for event in message.events]
            if self._envelope is None:
                return encode_json(items)
            return encode_json(self._envelope.render(batch_variables(
                items, webhook_id=self.webhook.id, webhook_name=self.webhook.name,
                payloads=self._payload is not None)))
        if self._payload is None:
            return message.body
        rendered = self.render(message.events[0])
        if self._form:
            return encode_form(rendered)
        return encode_json(rendered)

    def refuse(self) -> Outcome | None:
        if self._plain_http_refused:
            return Outcome(ok=False, retry=False,
                           error="plain http endpoints are not allowed (allow_http is false)")
        return super().refuse()

    def build(self, message: Message) -> Request | Outcome:
        if not self._templated:  # the usual case: no template work at all
            body = message.body
        elif not message.events:
            return Outcome(ok=False, retry=False, error="the message has no event")
        else:
            try:
                body = self.body(message)
            except TemplateError as error:
                # The same event fails the same way every time: retrying never helps.
                return Outcome(ok=False, retry=False, error=one_line(
                    self.scrub(f"the payload template failed: {error}")))
        return Request(body=body, headers=self.request_headers(message, body, int(time.time())))

    def classify(self, answer: Answer, duration_ms: float) -> Outcome:
        return classify(answer.status, self.excerpt(answer), answer.headers.get("Retry-After"),
                        duration_ms)


def _compiled(webhook: WebhookRef, name: str, mapping: dict[str, Any] | None) -> PayloadTemplate | None:
    if mapping is None:
        return None
    try:
        return compile_payload(mapping, positions=lambda path: webhook.where(("channel", name, *path)))
    except TemplateError as error:  # checked at load; only a bug gets here
        raise ValueError(f"{name}: {error}") from None


def encode_json(value: Any) -> bytes:
    """A rendered payload as sent: compact UTF-8 JSON, by pydantic's encoder (five times
    json's speed); text that is not valid Unicode is written as ASCII escapes by json's,
    so the body is valid JSON whatever the event held."""
    try:
        return to_json(value)
    except PydanticSerializationError:
        return json.dumps(value, separators=(",", ":")).encode()


def form_text(value: Any) -> str:
    """A rendered value as a form field: text as it is, numbers as in JSON, true/false,
    "" for null (a missing field), anything else (`{{ metadata }}` alone) as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def encode_form(fields: Mapping[str, Any]) -> bytes:
    """The fields as `application/x-www-form-urlencoded`, as aiohttp encodes a form."""
    return urlencode([(key, form_text(value)) for key, value in fields.items()],
                     errors="surrogatepass").encode("ascii")


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
