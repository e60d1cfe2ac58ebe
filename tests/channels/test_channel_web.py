"""The web channel against real receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import unittest.mock
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import quote, quote_plus

import pytest
from aiohttp import StreamReader, web
from multidict import CIMultiDict, CIMultiDictProxy
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import mailhooks
from mailhooks.channels.base import Message, Outcome, WebhookRef
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.http import Answer, parse_retry_after, read_excerpt
from mailhooks.channels.signing import SigningKeyError, signing_key
from mailhooks.channels.web import WebChannel, WebSender
from mailhooks.secrets import Resolved
from mailhooks.settings import Settings
from tests.utils import LOOPBACK, Handler, Receiver

from .conftest import SECRETS

DEADLINE = 5  # seconds any one send may take in these tests

MakeWeb = Callable[..., WebSender]
MakeMessage = Callable[..., Message]


async def send(sender: WebSender, msg: Message) -> Outcome:
    async with asyncio.timeout(DEADLINE):
        return await sender.send(msg)


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Handler:
    async def respond(_receiver: Receiver, _request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, headers=headers)

    return respond


async def test_posts_body_and_headers(
    receiver: Receiver, make_web: MakeWeb, make_message: MakeMessage
) -> None:
    sender = make_web(
        receiver.origin + "/hooks/mail?tenant=7",
        headers={"X-Api-Key": "${env:API_KEY}", "Authorization": "Bearer ${env:API_KEY}"},
    )
    msg = make_message()
    before = int(time.time())
    outcome = await sender.send(msg)

    assert outcome.ok and outcome.status == 200 and outcome.error is None
    assert outcome.outcome == "success"
    assert outcome.body_excerpt == ""  # a private address's answer is never shown
    assert outcome.duration_ms > 0
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.path == "/hooks/mail" and request.query == "tenant=7"
    assert request.body == msg.body
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"mailhooks/{mailhooks.__version__}"
    assert request.headers["X-Api-Key"] == SECRETS["${env:API_KEY}"]
    assert request.headers["Authorization"] == "Bearer " + SECRETS["${env:API_KEY}"]
    assert request.headers["webhook-id"] == msg.message_id
    assert before <= int(request.headers["webhook-timestamp"]) <= int(time.time())
    assert "webhook-signature" not in request.headers


async def test_configured_headers_cannot_replace_standard_webhooks_ones(
    receiver: Receiver, make_web: MakeWeb, make_message: MakeMessage
) -> None:
    sender = make_web(
        receiver.origin, headers={"Webhook-Id": "forged", "User-Agent": "custom/1"}
    )
    await sender.send(make_message(message_id="msg_real"))
    [request] = receiver.requests
    assert request.headers.getall("webhook-id") == ["msg_real"]
    assert request.headers["User-Agent"] == "custom/1"


async def test_batch_body_is_sent_as_is(
    receiver: Receiver, make_web: MakeWeb, make_message: MakeMessage
) -> None:
    events = [{"event": "delivered", "n": n} for n in range(3)]
    msg = make_message(*events, message_id="batch_1")
    outcome = await make_web(receiver.origin).send(msg)
    assert outcome.ok
    assert json.loads(receiver.requests[0].body) == events


async def test_a_cookie_a_receiver_sets_never_comes_back(
    receiver: Receiver, make_web: MakeWeb, make_message: MakeMessage
) -> None:
    receiver.handler = answer(200, headers={"Set-Cookie": "session=abc; Path=/"})
    origin = f"http://localhost:{receiver.port}"  # a host name: jars ignore IP hosts
    for sender in (make_web(origin + "/a"), make_web(origin + "/a"), make_web(origin + "/b")):
        assert (await sender.send(make_message())).ok
    assert [request.headers.get("Cookie") for request in receiver.requests] == [None] * 3


async def test_whsec_signature_verifies_with_standardwebhooks(
    receiver: Receiver, make_web: MakeWeb, make_message: MakeMessage
) -> None:
    outcome = await make_web(receiver.origin, secret="${env:SIGNING}").send(make_message())
    assert outcome.ok
    [request] = receiver.requests
    assert request.headers["webhook-signature"].startswith("v1,")
    verified = Webhook(SECRETS["${env:SIGNING}"]).verify(request.body, dict(request.headers))
    assert verified == json.loads(request.body)


async def test_plain_secret_signs_with_its_utf8_bytes(
    receiver: Receiver, make_web: MakeWeb, make_message: MakeMessage
) -> None:
    outcome = await make_web(receiver.origin, secret="${env:PLAIN_SIGNING}").send(make_message())
    assert outcome.ok
    [request] = receiver.requests
    key = base64.b64encode(SECRETS["${env:PLAIN_SIGNING}"].encode()).decode()
    Webhook("whsec_" + key).verify(request.body, dict(request.headers))
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"another key").decode()).verify(
            request.body, dict(request.headers)
        )


async def test_two_secrets_give_two_signatures_each_verifiable(
    receiver: Receiver, make_web: MakeWeb, make_message: MakeMessage
) -> None:
    sender = make_web(receiver.origin, secret=["${env:SIGNING}", "${env:PLAIN_SIGNING}"])
    assert (await sender.send(make_message())).ok
    [request] = receiver.requests
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    plain_key = "whsec_" + base64.b64encode(SECRETS["${env:PLAIN_SIGNING}"].encode()).decode()
    for signature, key in zip(signatures, [SECRETS["${env:SIGNING}"], plain_key], strict=True):
        alone = {**request.headers, "webhook-signature": signature}
        Webhook(key).verify(request.body, alone)
    # Each key matches only its own signature.
    with pytest.raises(WebhookVerificationError):
        Webhook(plain_key).verify(
            request.body, {**request.headers, "webhook-signature": signatures[0]}
        )


def test_signing_key_rules() -> None:
    key = b"\x00\x01" + b"k" * 30
    assert signing_key("whsec_" + base64.b64encode(key).decode()) == key
    assert signing_key("whsec_" + base64.b64encode(b"abcd" * 5).decode().rstrip("=")) == b"abcd" * 5
    assert signing_key("päss-phrase-of-enough-bytes") == "päss-phrase-of-enough-bytes".encode()
    for bad in ("whsec_not*base64!", "whsec_" + base64.b64encode(key).decode() + "!"):
        with pytest.raises(SigningKeyError) as raised:
            signing_key(bad)
        assert "base64" in str(raised.value) and "not*" not in str(raised.value)


@pytest.mark.parametrize("secret", ["short", "whsec_" + base64.b64encode(b"8 bytes!").decode(), ""])
def test_a_signing_secret_has_a_minimum_length(secret: str) -> None:
    with pytest.raises(SigningKeyError) as raised:
        signing_key(secret)
    assert secret not in str(raised.value) or not secret


def test_bad_whsec_secret_fails_at_build(
    context: ChannelContext, settings: Settings
) -> None:
    channel = WebChannel(type="web", url="http://127.0.0.1/", secret="${env:S}")
    with pytest.raises(SigningKeyError) as raised:
        WebSender(WebhookRef("x", "x"), channel, Resolved({"${env:S}": "whsec_%%%"}), context)
    assert "%%%" not in str(raised.value)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retried(
    receiver: Receiver, make_web: MakeWeb, make_message: MakeMessage, status: int
) -> None:
    receiver.handler = answer(status, b"upstream down")
    outcome = await make_web(receiver.origin).send(make_message())
    assert not outcome.ok and outcome.retry and outcome.status == status
    assert outcome.outcome == "retry"
    assert outcome.error is not None and outcome.error.startswith(f"HTTP {status} ")
    assert outcome.body_excerpt == ""  # from 127.0.0.1: only the status is shown


async def test_gone_is_permanent(
    receiver: Receiver, make_web: MakeWeb, make_message: MakeMessage
) -> None:
    receiver.handler = answer(410)
    outcome = await make_web(receiver.origin).send(make_message())
    assert not outcome.ok and not outcome.retry and outcome.status == 410
    assert outcome.outcome == "permanent_failure"
    assert outcome.error is not None and "410 Gone" in outcome.error


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 422, 425])
async def test_other_client_errors_are_retried(
    receiver: Receiver, make_web: MakeWeb, make_message: MakeMessage, status: int
) -> None:
    receiver.handler = answer(status)
    outcome = await make_web(receiver.origin).send(make_message())
    assert not outcome.ok and outcome.retry and outcome.status == status


async def test_redirect_is_not_followed(
    receiver: Receiver, make_web: MakeWeb, make_message: MakeMessage
) -> None:
    receiver.handler = answer(
        302, headers={"Location": "/elsewhere?access_token=leaky-location-token"}
    )
    outcome = await make_web(receiver.origin + "/hook").send(make_message())
    assert not outcome.ok and outcome.retry and outcome.status == 302
    assert outcome.error is not None
    assert "redirect to another URL is not followed" in outcome.error
    assert "leaky-location-token" not in outcome.error and "elsewhere" not in outcome.error
    assert [request.path for request in receiver.requests] == ["/hook"]


async def test_429_passes_retry_after_seconds(
    receiver: Receiver, make_web: MakeWeb, make_message: MakeMessage
) -> None:
    receiver.handler = answer(429, headers={"Retry-After": "120"})
    outcome = await make_web(receiver.origin).send(make_message())
    assert not outcome.ok and outcome.retry and outcome.status == 429
    assert outcome.retry_after == 120


async def test_503_passes_retry_after_http_date(
    receiver: Receiver, make_web: MakeWeb, make_message: MakeMessage
) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    receiver.handler = answer(503, headers={"Retry-After": later})
    outcome = await make_web(receiver.origin).send(make_message())
    assert outcome.retry and outcome.retry_after is not None
    assert 80 <= outcome.retry_after <= 91


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("30", now) == 30
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("-4", now) == 0
    assert parse_retry_after("Tue, 14 Nov 2023 22:15:00 GMT", now) == 100
    assert parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now) == 0  # in the past
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("nan", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("", now) is None


async def test_timeout_is_retried(
    receiver: Receiver, make_web: MakeWeb, make_message: MakeMessage
) -> None:
    async def stall(_receiver: Receiver, _request: web.Request) -> web.StreamResponse:
        await receiver.release.wait()
        return web.Response()

    receiver.handler = stall
    sender = make_web(receiver.origin, timeout=0.2)
    started = time.monotonic()
    outcome = await send(sender, make_message())
    assert time.monotonic() - started < 2
    assert not outcome.ok and outcome.retry and outcome.status is None
    assert outcome.error == "timed out after 0.2s"


async def test_settings_timeout_is_the_default(
    context: ChannelContext, secrets: Resolved
) -> None:
    context.settings = Settings(allow_http=True, egress={"allow": LOOPBACK}, timeout=7)
    channel = WebChannel(type="web", url="http://127.0.0.1:1/")
    assert WebSender(WebhookRef("x", "x"), channel, secrets, context)._timeout == 7
    channel = WebChannel(type="web", url="http://127.0.0.1:1/", timeout=3)
    assert WebSender(WebhookRef("x", "x"), channel, secrets, context)._timeout == 3


async def test_connection_refused_is_retried(
    free_port: int, make_web: MakeWeb, make_message: MakeMessage
) -> None:
    outcome = await send(make_web(f"http://127.0.0.1:{free_port}/"), make_message())
    assert not outcome.ok and outcome.retry
    assert outcome.error == "connection refused"


async def _raw_server(reply: bytes) -> tuple[asyncio.Server, int]:
    """A TCP server that reads a request head, writes `reply` and closes the connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize(
    ("reply", "status", "error"),
    [
        (b"", None, "the server closed the connection without answering"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10,
            200,
            "HTTP 200 OK, then the connection broke while reading the answer",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            200,
            "HTTP 200 OK, then the connection broke while reading the answer",
        ),
    ],
    ids=["before-answer", "mid-body", "mid-chunk"],
)
async def test_connection_closed_mid_answer_is_retried(
    make_web: MakeWeb, make_message: MakeMessage, reply: bytes, status: int | None, error: str
) -> None:
    server, port = await _raw_server(reply)
    async with server:
        outcome = await send(make_web(f"http://127.0.0.1:{port}/"), make_message())
    assert not outcome.ok and outcome.retry
    assert outcome.status == status
    assert outcome.error == error


def test_excerpt_of_a_public_answer_is_capped_and_scrubbed(make_web: MakeWeb) -> None:
    sender = make_web("https://crm.example.com/hook", headers={"X-Api-Key": "${env:API_KEY}"})
    echoed = ("e" * 20 + SECRETS["${env:API_KEY}"] + "e" * 100_000).encode()
    excerpt = sender.excerpt(Answer(500, CIMultiDictProxy(CIMultiDict()), echoed, public_peer=True))
    assert excerpt.startswith("e" * 20 + "[redacted]") and len(excerpt.encode()) <= 512 + 10
    assert SECRETS["${env:API_KEY}"] not in excerpt
    private = Answer(500, CIMultiDictProxy(CIMultiDict()), b"internal data", public_peer=False)
    assert sender.excerpt(private) == ""


def test_a_secret_echoed_in_another_form_is_scrubbed_too(context: ChannelContext) -> None:
    # A receiver echoes what it got as JSON, or in a URL: the secret's bytes change, not
    # what they give away.
    secret = 'k/ey+"with space&1'
    model = WebChannel.model_validate({"type": "web", "url": "https://crm.example.com/hook",
                                       "headers": {"X-Api-Key": "${env:ODD}"}})
    sender = WebSender(WebhookRef("crm/opens", "CRM opens"), model, Resolved({"${env:ODD}": secret}), context)
    echoes = [json.dumps({"headers": {"X-Api-Key": secret}}), f"/hook?key={quote_plus(secret)}",
              f"/hook/{quote(secret, safe='')}", f"said: {secret}"]
    for echoed in echoes:
        scrubbed = sender.excerpt(Answer(400, CIMultiDictProxy(CIMultiDict()), echoed.encode(),
                                         public_peer=True))
        assert "[redacted]" in scrubbed and "ey+" not in scrubbed and "ey%2B" not in scrubbed, scrubbed


@pytest.mark.parametrize("complete", [True, False], ids=["answer-complete", "answer-streaming"])
@pytest.mark.parametrize("size", [0, 10, 512, 2000])
async def test_read_excerpt_takes_at_most_512_bytes(complete: bool, size: int) -> None:
    # Complete answers are taken from the buffer at once; others are read as they come.
    protocol = unittest.mock.Mock(_reading_paused=False)
    content = StreamReader(protocol, 2**16, loop=asyncio.get_running_loop())
    body = bytes(range(256)) * 8
    content.feed_data(body[:size])
    if complete:
        content.feed_eof()
    else:
        asyncio.get_running_loop().call_later(0.01, content.feed_eof)
    assert await read_excerpt(content) == body[:min(size, 512)]


async def test_plain_http_refused_unless_allowed(
    receiver: Receiver, context: ChannelContext, secrets: Resolved, make_message: MakeMessage
) -> None:
    context.settings = Settings(allow_http=False, egress={"allow": LOOPBACK})
    channel = WebChannel(type="web", url=receiver.origin)
    outcome = await WebSender(WebhookRef("x", "x"), channel, secrets, context).send(make_message())
    assert not outcome.ok and not outcome.retry
    assert outcome.error is not None and "allow_http" in outcome.error
    assert receiver.requests == []
