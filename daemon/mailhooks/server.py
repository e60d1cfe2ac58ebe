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
from mailhooks.intake import IntakeError, read_events
from mailhooks.service import Service
from mailhooks.spool import SpoolError, SpoolFull

BODY_READ_TIMEOUT: Final = 60.0
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


async def post_events(service: Service, request: web.BaseRequest) -> web.Response:
    limits = service.settings.limits
    if service.stopping:
        return _error(503, "shutting down; retry shortly", retry_after=RETRY_AFTER_STOPPING)
    if request.content_length is not None and request.content_length > limits.max_body_bytes:
        service.metrics.events_rejected.labels("too_large").inc()
        return _error(413, f"body over {limits.max_body_bytes} bytes")
    try:
        if request.content.is_eof():
            body = await request.read()  # already received whole: nothing to wait for
        else:
            async with asyncio.timeout(BODY_READ_TIMEOUT):
                body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        service.metrics.events_rejected.labels("too_large").inc()
        return _error(413, f"body over {limits.max_body_bytes} bytes")
    except TimeoutError:
        return _error(408, f"body not received within {BODY_READ_TIMEOUT:.0f}s")
    except (ConnectionResetError, ClientConnectionResetError):
        # The client hung up mid-body: nothing to answer, nothing was taken.
        _log.info("client_disconnected", during="body")
        return _error(400, "connection lost while reading the body")
    try:
        events = read_events(body, request.content_type, limits.max_batch_events)
    except IntakeError as error:
        service.metrics.events_rejected.labels("too_many" if error.status == 413 else "invalid").inc()
        _log.info("events_rejected", status=error.status, error=error.message,
                  details=len(error.details))
        return _json(error.as_json(), status=error.status)
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
        except json.JSONDecodeError:
            return _error(400, "body must be JSON, e.g. {\"event\": \"bounced\"}")
        if isinstance(body, dict) and isinstance(body.get("event"), str):
            event_name = body["event"]
    result = await service.test_webhook(webhook_id, event_name)
    if result is None:
        return _error(404, f"no webhook {webhook_id!r} is loaded")
    if not result["sent"]:  # refused before sending (an unknown event name)
        return _json(result, status=400)
    return _json(result)


async def reload(service: Service, _request: web.BaseRequest) -> web.Response:
    return _json(await service.reload(reason="api"))


async def deliveries(service: Service, request: web.BaseRequest) -> web.Response:
    state = request.query.get("state")
    if state not in (None, "pending", "delivered", "failed", "dropped"):
        return _error(400, "state is one of pending, delivered, failed, dropped")
    try:
        limit = min(int(request.query.get("limit", "100")), 10000)
    except ValueError:
        return _error(400, "limit must be a number")
    records = await service.deliveries(state, request.query.get("webhook"), limit)
    return _json({"deliveries": [record.as_json() for record in records]})


async def replay(service: Service, request: web.BaseRequest) -> web.Response:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return _error(400, 'body must be JSON: {"ids": [1, 2]} or {"webhook": "ID"}')
    ids = body.get("ids") if isinstance(body, dict) else None
    webhook = body.get("webhook") if isinstance(body, dict) else None
    valid_ids = isinstance(ids, list) and all(
        isinstance(item, int) and not isinstance(item, bool) for item in ids
    )
    if not (valid_ids or isinstance(webhook, str)) or (ids is not None and webhook is not None):
        return _error(400, 'give either "ids" (a list of delivery ids) or "webhook" (an id)')
    replayed = await service.replay(ids or [], webhook)
    return _json({"replayed": replayed})


# The routes, on aiohttp's low-level server rather than an Application: its router,
# middleware and Request cost the event loop about 35 µs per request under load (an A/B
# of intake: 170 against 202 µs per event, +13 % events/s), for nine fixed paths.
_ROUTES: Final[dict[tuple[str, str], Handler]] = {
    ("POST", "/events"): post_events,
    ("GET", "/healthz"): healthz,
    ("GET", "/metrics"): metrics,
    ("GET", "/status"): status,
    ("GET", "/webhooks"): list_webhooks,
    ("POST", "/-/reload"): reload,
    ("GET", "/deliveries"): deliveries,
    ("POST", "/deliveries/replay"): replay,
}
_TEST_PATH: Final = re.compile(r"/webhooks/(?P<id>.+)/test")


def route(method: str, path: str) -> Handler | None:
    """The handler of a request (HEAD is answered as GET, without the body)."""
    method = "GET" if method == "HEAD" else method
    handler = _ROUTES.get((method, path))
    if handler is None and method == "POST":
        found = _TEST_PATH.fullmatch(path)
        if found is not None:
            handler = functools.partial(test_webhook, webhook_id=found["id"])
    return handler


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

    def __init__(self, service: Service) -> None:
        self.service = service

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        handler = route(request.method, request.path)
        if handler is None:
            allowed = allowed_methods(request.path)
            if allowed:
                return _json({"error": "Method Not Allowed"}, status=405,
                             headers={"Allow": ", ".join(allowed)})
            return _json({"error": "Not Found"}, status=404)
        try:
            return await handler(self.service, request)
        except web.HTTPException as error:  # e.g. a body over client_max_size
            return _json({"error": error.reason}, status=error.status)
        except Exception:
            _log.exception("request_failed", method=request.method, path=request.path)
            return _error(500, "internal error; see the daemon's log")


def make_server(service: Service) -> web.Server:
    loop = asyncio.get_running_loop()
    max_body = service.settings.limits.max_body_bytes

    def request(message: RawRequestMessage, payload: StreamReader, protocol: RequestHandler,
                writer: AbstractStreamWriter, task: asyncio.Task[None]) -> web.BaseRequest:
        return web.BaseRequest(message, payload, protocol, writer, task, loop,
                               client_max_size=max_body)

    return web.Server(Api(service), request_factory=request, access_log=None)
