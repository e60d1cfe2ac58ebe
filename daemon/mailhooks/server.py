"""[in] The HTTP API (SPEC §4), the same on the UNIX socket and on TCP."""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import ClientConnectionResetError, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from mailhooks import log
from mailhooks.connections import GuardedServer
from mailhooks.events import Event
from mailhooks.intake import JSON_TYPES, NDJSON_TYPES, IntakeError, read_events
from mailhooks.roles import Authority, Denied, Peer, Role
from mailhooks.service import Service
from mailhooks.sources import kumomta
from mailhooks.sources.records import validated
from mailhooks.spool import SpoolError, SpoolFull

BODY_READ_TIMEOUT: Final = 60.0
MAX_LISTED: Final = 10000
NO_PEER: Final = Peer(unix=False)
RETRY_AFTER_FULL: Final = "30"
RETRY_AFTER_STOPPING: Final = "5"

_log = log.get("mailhooks.server")
Handler = Callable[[Service, web.BaseRequest], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers,
                             dumps=lambda value: json.dumps(value, default=str))


def _error(status: int, message: str, **extra: Any) -> web.Response:
    headers = {}
    if status == 503:
        headers["Retry-After"] = extra.pop("retry_after", RETRY_AFTER_FULL)
    return _json({"error": message, **extra}, status=status, headers=headers)


def json_body_type(request: web.BaseRequest) -> web.Response | None:
    """415 unless the body is JSON or NDJSON: a web page can post `text/plain` or a form
    anywhere without asking, but not these (SPEC §4a)."""
    if request.content_type in JSON_TYPES or request.content_type in NDJSON_TYPES:
        return None
    return _error(415, "send events as application/json or application/x-ndjson")


async def read_body(service: Service, request: web.BaseRequest) -> bytes | web.Response:
    """The request's body within the config's size limit and BODY_READ_TIMEOUT; or the
    answer that refuses it."""
    limits = service.settings.limits
    if request.content_length is not None and request.content_length > limits.max_body_bytes:
        service.metrics.events_rejected.labels("too_large").inc()
        return _error(413, f"body over {limits.max_body_bytes} bytes")
    try:
        if request.content.is_eof():
            return await request.read()  # already received whole: nothing to wait for
        async with asyncio.timeout(BODY_READ_TIMEOUT):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        service.metrics.events_rejected.labels("too_large").inc()
        return _error(413, f"body over {limits.max_body_bytes} bytes")
    except TimeoutError:
        return _error(408, f"body not received within {BODY_READ_TIMEOUT:.0f}s")
    except (ConnectionResetError, ClientConnectionResetError):
        # The client hung up mid-body: nothing to answer, nothing was taken.
        _log.info("client_disconnected", during="body")
        return _error(400, "connection lost while reading the body")


async def spool_events(service: Service, events: list[Event]) -> web.Response:
    """Spool validated events: 202 once committed, 503 when the spool cannot take them."""
    try:
        spooled = await service.accept(events)
    except SpoolFull as error:
        service.metrics.events_rejected.labels("spool_full").inc()
        _log.warning("spool_full", error=str(error))
        return _error(503, "spool is full; retry later")
    except SpoolError as error:
        service.metrics.events_rejected.labels("spool_error").inc()
        _log.error("spool_error", error=str(error))
        return _error(503, "spool unavailable; retry later")
    # The answer every accepted batch gets, written without a JSON encoder.
    return web.Response(
        body=b'{"accepted": %d, "duplicates": %d}' % (len(events), len(events) - spooled),
        status=202, content_type="application/json",
    )


async def intake_body(service: Service, request: web.BaseRequest) -> bytes | web.Response:
    """The body of a request that brings events, or the answer that refuses it: the daemon
    stopping (503), not JSON or NDJSON (415), too large or too slow (413, 408)."""
    if service.stopping:
        return _error(503, "shutting down; retry shortly", retry_after=RETRY_AFTER_STOPPING)
    refused = json_body_type(request)
    if refused is not None:
        service.metrics.events_rejected.labels("media_type").inc()
        return refused
    return await read_body(service, request)


async def post_events(service: Service, request: web.BaseRequest) -> web.Response:
    body = await intake_body(service, request)
    if isinstance(body, web.Response):
        return body
    try:
        events = read_events(body, request.content_type, service.settings.limits.max_batch_events)
    except IntakeError as error:
        service.metrics.events_rejected.labels("too_many" if error.status == 413 else "invalid").inc()
        _log.info("events_rejected", status=error.status, error=error.message,
                  details=len(error.details))
        return _json(error.as_json(), status=error.status)
    return await spool_events(service, events)


async def post_kumomta(service: Service, request: web.BaseRequest) -> web.Response:
    """KumoMTA's log hook (SPEC §8): its records, one object or an array, as events;
    answered as POST /events is. Records mailhooks does not understand are counted and
    skipped, so the hook never retries them forever."""
    body = await intake_body(service, request)
    if isinstance(body, web.Response):
        return body
    limit = service.settings.limits.max_batch_events
    try:
        # KumoMTA posts an object or an array; a log shipper, one record per line.
        records = (kumomta.parse_lines(body, limit) if request.content_type in NDJSON_TYPES
                   else kumomta.parse_body(body, limit))
    except kumomta.TooMany as error:
        service.metrics.events_rejected.labels("too_many").inc()
        return _error(413, f"too many records: {error.count}, at most {limit} per request")
    except ValueError as error:
        service.metrics.events_rejected.labels("invalid").inc()
        return _error(400, str(error))
    events, skipped = validated(records)
    service.note_skipped("kumomta", skipped)
    if not events:
        return _json({"accepted": 0, "duplicates": 0, "skipped": len(skipped)}, status=202)
    return await spool_events(service, events)


async def healthz(service: Service, _request: web.BaseRequest) -> web.Response:
    return _json({"status": "stopping" if service.stopping else "ok"})


async def metrics(service: Service, _request: web.BaseRequest) -> web.Response:
    return web.Response(body=await service.metrics_text(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def list_webhooks(service: Service, _request: web.BaseRequest) -> web.Response:
    return _json(service.webhooks_report())


async def status(service: Service, _request: web.BaseRequest) -> web.Response:
    return _json(await service.status_report())


async def test_webhook(service: Service, request: web.BaseRequest, webhook_id: str) -> web.Response:
    event_name = request.query.get("event")
    if request.can_read_body:
        try:
            body = await request.json()
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
            return _error(400, "body must be JSON, e.g. {\"event\": \"bounced\"}")
        if isinstance(body, dict) and isinstance(body.get("event"), str):
            event_name = body["event"]
    result = await service.test_webhook(webhook_id, event_name)
    if result is None:
        return _error(404, f"no webhook {webhook_id!r} is loaded")
    if not result["sent"]:  # refused before sending (an unknown event name)
        return _json(result, status=400)
    return _json(result)


async def resume_webhook(service: Service, _request: web.BaseRequest, webhook_id: str) -> web.Response:
    resumed = service.resume(webhook_id)
    if resumed is None:
        return _error(404, f"no webhook {webhook_id!r} is loaded")
    return _json({"webhook": webhook_id, "resumed": resumed})


async def reload(service: Service, _request: web.BaseRequest) -> web.Response:
    return _json(await service.reload(reason="api"))


async def deliveries(service: Service, request: web.BaseRequest) -> web.Response:
    state = request.query.get("state")
    if state not in (None, "pending", "delivered", "failed", "dropped"):
        return _error(400, "state is one of pending, delivered, failed, dropped")
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LISTED:
        return _error(400, f"limit is a number from 1 to {MAX_LISTED}")
    records = await service.deliveries(state, request.query.get("webhook"), limit)
    return _json({"deliveries": [record.as_json() for record in records]})


async def replay(service: Service, request: web.BaseRequest) -> web.Response:
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
        return _error(400, 'body must be JSON: {"ids": [1, 2]} or {"webhook": "ID"}')
    ids = body.get("ids") if isinstance(body, dict) else None
    webhook = body.get("webhook") if isinstance(body, dict) else None
    now = body.get("now", False) if isinstance(body, dict) else False
    if not isinstance(now, bool) or (now and webhook is None):
        return _error(400, '"now": true goes with "webhook": it makes that webhook\'s pending '
                           "deliveries due now")
    valid_ids = isinstance(ids, list) and all(
        isinstance(item, int) and not isinstance(item, bool) for item in ids
    )
    if not (valid_ids or isinstance(webhook, str)) or (ids is not None and webhook is not None):
        return _error(400, 'give either "ids" (a list of delivery ids) or "webhook" (an id)')
    replayed, left, paused = await service.replay(ids or [], webhook, now)
    # left_failed: failed ones not re-queued, the webhook being at its cap of pending
    # deliveries; a replay once those have gone out takes them. paused: webhooks that
    # send nothing, re-queued or not, until they are resumed.
    return _json({"replayed": replayed, "left_failed": left, "paused": paused})


# The routes, on aiohttp's low-level server rather than an Application: its router,
# middleware and Request cost the event loop about 35 µs per request under load (an A/B
# of intake: 170 against 202 µs per event, +13 % events/s), for a few fixed paths. Each
# route names the role it needs (SPEC §4a).
_ROUTES: Final[dict[tuple[str, str], tuple[Handler, Role]]] = {
    ("POST", "/events"): (post_events, Role.SEND),
    ("POST", "/sources/kumomta"): (post_kumomta, Role.SEND),
    ("GET", "/healthz"): (healthz, Role.ANYONE),
    ("GET", "/metrics"): (metrics, Role.ANYONE),
    ("GET", "/status"): (status, Role.ADMIN),
    ("GET", "/webhooks"): (list_webhooks, Role.ADMIN),
    ("POST", "/-/reload"): (reload, Role.ADMIN),
    ("GET", "/deliveries"): (deliveries, Role.ADMIN),
    ("POST", "/deliveries/replay"): (replay, Role.ADMIN),
}
_TEST_PATH: Final = re.compile(r"/webhooks/(?P<id>.+)/(?P<action>test|resume)")


def route(method: str, path: str) -> tuple[Handler, Role] | None:
    """The handler of a request and the role it needs (HEAD is answered as GET)."""
    method = "GET" if method == "HEAD" else method
    found = _ROUTES.get((method, path))
    if found is None and method == "POST":
        matched = _TEST_PATH.fullmatch(path)
        if matched is not None:
            action = test_webhook if matched["action"] == "test" else resume_webhook
            found = functools.partial(action, webhook_id=matched["id"]), Role.ADMIN
    return found


def allowed_methods(path: str) -> list[str]:
    methods = {method for method, known in _ROUTES if known == path}
    if _TEST_PATH.fullmatch(path):
        methods.add("POST")
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


class Api:
    """Answers every request on the daemon's sockets: one JSON answer per request, errors
    included; a bug answers a JSON 500 and logs one line with the traceback."""

    def __init__(self, service: Service, authority: Authority) -> None:
        self.service = service
        self.authority = authority

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        found = route(request.method, request.path)
        if found is None:
            allowed = allowed_methods(request.path)
            if allowed:
                return _json({"error": "Method Not Allowed"}, status=405,
                             headers={"Allow": ", ".join(allowed)})
            return _json({"error": "Not Found"}, status=404)
        handler, needed = found
        peer: Peer = getattr(request.protocol, "peer", NO_PEER)
        try:
            if not peer.unix and "Origin" in request.headers and needed is not Role.ANYONE:
                # Only a browser sends Origin: a page must not drive the API, whatever
                # token or address it got hold of (DNS rebinding).
                raise Denied(403, "browsers may not call this API")
            self.authority.check(peer, request.headers.get("Authorization"), needed)
        except Denied as denied:
            self.service.metrics.requests_denied.labels(str(denied.status)).inc()
            headers = {"WWW-Authenticate": 'Bearer realm="mailhooks"'} if denied.status == 401 else None
            return _json({"error": denied.message}, status=denied.status, headers=headers)
        try:
            return await handler(self.service, request)
        except web.HTTPException as error:  # e.g. a body over client_max_size
            return _json({"error": error.reason}, status=error.status)
        except Exception:
            _log.exception("request_failed", method=request.method, path=request.path)
            return _error(500, "internal error; see the daemon's log")


def make_server(service: Service, authority: Authority) -> web.Server:
    loop = asyncio.get_running_loop()
    max_body = service.settings.limits.max_body_bytes

    def request(message: RawRequestMessage, payload: StreamReader, protocol: RequestHandler,
                writer: AbstractStreamWriter, task: asyncio.Task[None]) -> web.BaseRequest:
        return web.BaseRequest(message, payload, protocol, writer, task, loop,
                               client_max_size=max_body)

    return GuardedServer(Api(service, authority), request_factory=request, access_log=None,
                         max_connections=service.settings.limits.max_connections)
