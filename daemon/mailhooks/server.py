"""[in] The HTTP API (SPEC §4), the same on the UNIX socket and on TCP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from aiohttp import ClientConnectionResetError, web

from mailhooks import log
from mailhooks.intake import IntakeError, read_events
from mailhooks.spool import SpoolError, SpoolFull

if TYPE_CHECKING:
    from mailhooks.app import Daemon

DAEMON: Final[web.AppKey[Daemon]] = web.AppKey("daemon")
BODY_READ_TIMEOUT: Final = 60.0
RETRY_AFTER_FULL: Final = "30"
RETRY_AFTER_STOPPING: Final = "5"

_log = log.get("mailhooks.server")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers,
                             dumps=lambda value: json.dumps(value, default=str))


def _error(status: int, message: str, **extra: Any) -> web.Response:
    headers = {}
    if status == 503:
        headers["Retry-After"] = extra.pop("retry_after", RETRY_AFTER_FULL)
    return _json({"error": message, **extra}, status=status, headers=headers)


async def post_events(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    limits = daemon.settings.limits
    if daemon.stopping:
        return _error(503, "shutting down; retry shortly", retry_after=RETRY_AFTER_STOPPING)
    if request.content_length is not None and request.content_length > limits.max_body_bytes:
        daemon.metrics.events_rejected.labels("too_large").inc()
        return _error(413, f"body over {limits.max_body_bytes} bytes")
    try:
        if request.content.is_eof():
            body = await request.read()  # already received whole: nothing to wait for
        else:
            async with asyncio.timeout(BODY_READ_TIMEOUT):
                body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        daemon.metrics.events_rejected.labels("too_large").inc()
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
        daemon.metrics.events_rejected.labels("too_many" if error.status == 413 else "invalid").inc()
        _log.info("events_rejected", status=error.status, error=error.message,
                  details=len(error.details))
        return _json(error.as_json(), status=error.status)
    try:
        spooled = await daemon.accept(events)
    except SpoolFull as error:
        daemon.metrics.events_rejected.labels("spool_full").inc()
        _log.warning("spool_full", error=str(error))
        return _error(503, "spool is full; retry later")
    except SpoolError as error:
        daemon.metrics.events_rejected.labels("spool_error").inc()
        _log.error("spool_error", error=str(error))
        return _error(503, "spool unavailable; retry later")
    # The answer every accepted batch gets, written without a JSON encoder.
    return web.Response(
        body=b'{"accepted": %d, "duplicates": %d}' % (len(events), len(events) - spooled),
        status=202, content_type="application/json",
    )


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "stopping" if request.app[DAEMON].stopping else "ok"})


async def metrics(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    daemon.metrics.observe_stats(await daemon.spool.stats())
    return web.Response(body=daemon.metrics.render(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def list_webhooks(request: web.Request) -> web.Response:
    return _json(request.app[DAEMON].webhooks_report())


async def status(request: web.Request) -> web.Response:
    return _json(await request.app[DAEMON].status_report())


async def test_webhook(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    event_name = request.query.get("event")
    if request.can_read_body:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "body must be JSON, e.g. {\"event\": \"bounced\"}")
        if isinstance(body, dict) and isinstance(body.get("event"), str):
            event_name = body["event"]
    result = await daemon.test_webhook(request.match_info["id"], event_name)
    if result is None:
        return _error(404, f"no webhook {request.match_info['id']!r} is loaded")
    if not result["sent"]:  # refused before sending (an unknown event name)
        return _json(result, status=400)
    return _json(result)


async def reload(request: web.Request) -> web.Response:
    return _json(await request.app[DAEMON].reload(reason="api"))


async def deliveries(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    state = request.query.get("state")
    if state not in (None, "pending", "delivered", "failed", "dropped"):
        return _error(400, "state is one of pending, delivered, failed, dropped")
    try:
        limit = min(int(request.query.get("limit", "100")), 10000)
    except ValueError:
        return _error(400, "limit must be a number")
    records = await daemon.spool.deliveries(state, request.query.get("webhook"), limit)
    return _json({"deliveries": [record.as_json() for record in records]})


async def replay(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
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
    replayed = await daemon.replay(ids or [], webhook)
    return _json({"replayed": replayed})


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A bug answers one JSON 500 and one log line with the traceback, never a HTML page."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status >= 400 and error.content_type != "application/json":
            return _json({"error": error.reason}, status=error.status)
        raise
    except Exception:
        _log.exception("request_failed", method=request.method, path=request.path)
        return _error(500, "internal error; see the daemon's log")


def make_app(daemon: Daemon) -> web.Application:
    app = web.Application(
        client_max_size=daemon.settings.limits.max_body_bytes, middlewares=[errors_as_json]
    )
    app[DAEMON] = daemon
    app.router.add_post("/events", post_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", status)
    app.router.add_get("/webhooks", list_webhooks)
    app.router.add_post(r"/webhooks/{id:.+}/test", test_webhook)
    app.router.add_post("/-/reload", reload)
    app.router.add_get("/deliveries", deliveries)
    app.router.add_post("/deliveries/replay", replay)
    return app
