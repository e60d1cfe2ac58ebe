"""The HTTP API's routing: every answer is JSON, unknown paths and methods included."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web

from mailhooks import server
from mailhooks.roles import Authority, Role
from mailhooks.service import Service
from mailhooks.settings import Settings
from tests.utils import DaemonProcess, Receiver, unix_exchange


async def raw(daemon: DaemonProcess, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    return await unix_exchange(daemon.socket, method, path)


async def test_unknown_paths_and_methods_answer_json(daemon: DaemonProcess) -> None:
    await daemon.start()
    status, headers, body = await raw(daemon, "GET", "/nowhere")
    assert status == 404 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"error": "Not Found"}
    status, headers, body = await raw(daemon, "GET", "/events")
    assert status == 405 and headers["Allow"] == "POST"
    assert json.loads(body) == {"error": "Method Not Allowed"}
    status, headers, _ = await raw(daemon, "DELETE", "/healthz")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    status, headers, _ = await raw(daemon, "GET", "/webhooks/team/hook/test")
    assert status == 405 and headers["Allow"] == "POST"


async def test_head_answers_like_get_without_a_body(daemon: DaemonProcess) -> None:
    await daemon.start()
    status, headers, body = await raw(daemon, "HEAD", "/healthz")
    assert status == 200 and body == b""
    assert headers["Content-Type"].startswith("application/json")


async def test_a_webhook_id_with_a_slash_reaches_the_test_route(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    daemon.add_webhook("team/crm", receiver.url)
    await daemon.start()
    status, _, body = await raw(daemon, "POST", "/webhooks/team/crm/test")
    assert status == 200 and json.loads(body)["sent"] is True
    status, _, body = await raw(daemon, "POST", "/webhooks/team/other/test")
    assert status == 404 and "team/other" in json.loads(body)["error"]


def test_routes() -> None:
    assert server.route("POST", "/events") == (server.post_events, Role.SEND)
    assert server.route("HEAD", "/status") == (server.status, Role.ADMIN)
    assert server.route("GET", "/metrics") == (server.metrics, Role.ANYONE)
    found = server.route("POST", "/webhooks/a/b/test")
    assert found is not None and found[1] is Role.ADMIN
    handler = found[0]
    assert isinstance(handler, functools.partial) and handler.keywords == {"webhook_id": "a/b"}
    for method, path in [("GET", "/webhooks/a/test"), ("POST", "/webhooks//test"),
                         ("POST", "/webhooks/a/test/x"), ("GET", "/events/")]:
        assert server.route(method, path) is None, (method, path)


@pytest.fixture
async def failing_api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The API in this process with one extra route whose handler has a bug."""

    async def broken(_service: Service, _request: web.BaseRequest) -> web.Response:
        raise RuntimeError("a bug")

    monkeypatch.setitem(server._ROUTES, ("GET", "/broken"), (broken, Role.ANYONE))
    runner = web.ServerRunner(web.Server(server.Api(cast(Service, None), Authority(Settings()))))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_a_handler_bug_answers_json_500(failing_api: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(failing_api + "/broken") as answer:
        body: Any = await answer.json()
        assert answer.status == 500
    assert body == {"error": "internal error; see the daemon's log"}
