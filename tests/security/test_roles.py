"""Who may do what (SPEC §4a), tried as the people who should not.

Before: the TCP listener had no authentication and ignored Content-Type and Origin: a
`text/plain` POST from any page was accepted and delivered signed; replay, reload and
test answered 200 over TCP; every user that could reach the socket was admin.
"""

from __future__ import annotations

import asyncio
import grp
import json
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from mailhooks.cli.client import call
from mailhooks.cli.common import CommandError
from tests.security.conftest import curl_as_nobody, free_port, needs_root, nobody_group, open_socket_to_nobody
from tests.utils import DaemonProcess, Receiver, event, wait_until

SEND_TOKEN = "send-token-4f9a0c2b7d1e"
ADMIN_TOKEN = "admin-token-8b3e6f1a9c2d"
ADMIN_ROUTES = [
    ("GET", "/status", None), ("GET", "/webhooks", None), ("GET", "/deliveries", None),
    ("POST", "/deliveries/replay", '{"webhook": "crm"}'), ("POST", "/-/reload", None),
    ("POST", "/webhooks/crm/test", "{}"),
]


@needs_root
async def test_another_user_on_the_socket_may_send_but_not_administer(
    daemon: DaemonProcess, receiver: Receiver,
) -> None:
    daemon.add_webhook("crm", receiver.url)
    await daemon.start()
    open_socket_to_nobody(daemon)
    for method, path, data in ADMIN_ROUTES:
        answer = await curl_as_nobody(daemon.socket, method, path, data)
        assert answer.status == 403, (path, answer)
        assert "admin role" in json.loads(answer.body)["error"]
    sent = await curl_as_nobody(daemon.socket, "POST", "/events", json.dumps(event(1)))
    assert sent.status == 202, sent
    assert (await curl_as_nobody(daemon.socket, "GET", "/healthz")).status == 200
    assert (await curl_as_nobody(daemon.socket, "GET", "/metrics")).status == 200
    await wait_until(lambda: len(receiver.requests) == 1, what="the event sent by nobody")
    assert receiver.requests[0].path == "/hook", "no test message was sent by nobody"


@needs_root
async def test_admin_groups_make_a_user_admin(daemon: DaemonProcess, receiver: Receiver) -> None:
    daemon.config["api"] = {"admin_groups": [nobody_group()]}
    daemon.add_webhook("crm", receiver.url)
    await daemon.start()
    open_socket_to_nobody(daemon)
    for method, path, data in ADMIN_ROUTES:
        answer = await curl_as_nobody(daemon.socket, method, path, data)
        assert answer.status in (200, 202), (path, answer)


@pytest.fixture
def group_with_nobody() -> Iterator[str]:
    """A new group that lists `nobody` as a supplementary member (in /etc/group), removed
    after the test; skips where the shadow tools are missing."""
    if not (shutil.which("groupadd") and shutil.which("gpasswd") and shutil.which("groupdel")):
        pytest.skip("needs groupadd, gpasswd and groupdel")
    name = f"mhtest{secrets.token_hex(3)}"
    subprocess.run(["groupadd", name], check=True)
    try:
        subprocess.run(["gpasswd", "--add", "nobody", name], check=True, capture_output=True)
        yield name
    finally:
        subprocess.run(["groupdel", name], check=False)


@needs_root
async def test_a_supplementary_admin_group_makes_a_user_admin(
    daemon: DaemonProcess, receiver: Receiver, group_with_nobody: str,
) -> None:
    # nobody's primary group is not the admin group: only /etc/group's member list says so.
    assert grp.getgrnam(group_with_nobody).gr_gid != pwd.getpwnam("nobody").pw_gid
    daemon.config["api"] = {"admin_groups": [group_with_nobody]}
    daemon.add_webhook("crm", receiver.url)
    await daemon.start()
    open_socket_to_nobody(daemon)
    answer = await curl_as_nobody(daemon.socket, "GET", "/webhooks")
    assert answer.status == 200, answer


@needs_root
async def test_a_group_nobody_is_not_in_gives_nobody_nothing(
    daemon: DaemonProcess, receiver: Receiver,
) -> None:
    daemon.config["api"] = {"admin_groups": ["root"]}
    daemon.add_webhook("crm", receiver.url)
    await daemon.start()
    open_socket_to_nobody(daemon)
    answer = await curl_as_nobody(daemon.socket, "GET", "/webhooks")
    assert answer.status == 403, answer


async def test_the_cli_says_what_to_do_without_the_role(short_tmp: Path) -> None:
    async def refuse(_request: web.BaseRequest) -> web.Response:
        return web.json_response({"error": "this needs the admin role: run it as root"}, status=403)

    runner = web.ServerRunner(web.Server(refuse))
    await runner.setup()
    site = web.UnixSite(runner, str(short_tmp / "s.sock"))
    await site.start()
    try:
        with pytest.raises(CommandError) as raised:
            await asyncio.to_thread(call, short_tmp / "s.sock", "GET", "/status")
    finally:
        await runner.cleanup()
    assert "the daemon refused: this needs the admin role" in str(raised.value)


@pytest.fixture
async def tcp_daemon(daemon: DaemonProcess, receiver: Receiver) -> tuple[DaemonProcess, str]:
    port = free_port()
    daemon.config["http"] = {"listen": f"127.0.0.1:{port}", "tokens": {
        "send": ["${env:SEND_TOKEN}"], "admin": ["${env:ADMIN_TOKEN}"]}}
    daemon.env.update(SEND_TOKEN=SEND_TOKEN, ADMIN_TOKEN=ADMIN_TOKEN)
    daemon.add_webhook("crm", receiver.url, channel={"secret": "${env:SIGNING}",
                                                     "headers": {"X-Api-Key": "${env:API_KEY}"}})
    daemon.env.update(SIGNING="signing-secret-0123456789abcdef", API_KEY="api-key-0123456789")
    await daemon.start()
    return daemon, f"http://127.0.0.1:{port}"


async def _request(base: str, method: str, path: str, *, token: str | None = None,
                   data: str | None = None, content_type: str = "application/json",
                   origin: str | None = None) -> tuple[int, str]:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if origin is not None:
        headers["Origin"] = origin
    async with aiohttp.ClientSession() as session, session.request(
        method, base + path, data=data, headers=headers
    ) as response:
        return response.status, await response.text()


async def test_tcp_without_a_token_gets_401_and_nothing_is_delivered(
    tcp_daemon: tuple[DaemonProcess, str], receiver: Receiver,
) -> None:
    _daemon, base = tcp_daemon
    status, body = await _request(base, "POST", "/events", data=json.dumps(event(1)))
    assert status == 401 and "bearer token" in body
    for method, path, data in ADMIN_ROUTES:
        assert (await _request(base, method, path, data=data))[0] == 401, path
    assert (await _request(base, "GET", "/healthz"))[0] == 200
    assert (await _request(base, "GET", "/metrics"))[0] == 200
    wrong = await _request(base, "POST", "/events", token="guess", data=json.dumps(event(2)))
    assert wrong[0] == 401
    assert receiver.requests == []


async def test_a_browser_page_cannot_post_or_read(
    tcp_daemon: tuple[DaemonProcess, str], receiver: Receiver,
) -> None:
    """A page can send text/plain anywhere without a preflight; DNS rebinding gives it
    the daemon's origin. Neither gets it an event in, nor an answer out."""
    _daemon, base = tcp_daemon
    forged = json.dumps(event(1))
    assert (await _request(base, "POST", "/events", token=SEND_TOKEN, data=forged,
                           content_type="text/plain"))[0] == 415
    assert (await _request(base, "POST", "/events", token=SEND_TOKEN, data="event=x",
                           content_type="application/x-www-form-urlencoded"))[0] == 415
    assert (await _request(base, "POST", "/events", token=SEND_TOKEN, data=forged,
                           origin="http://evil.example"))[0] == 403
    assert (await _request(base, "GET", "/deliveries", token=ADMIN_TOKEN,
                           origin="http://127.0.0.1"))[0] == 403
    assert receiver.requests == []


async def test_a_send_token_sends_and_an_admin_token_administers(
    tcp_daemon: tuple[DaemonProcess, str], receiver: Receiver,
) -> None:
    daemon, base = tcp_daemon
    status, _ = await _request(base, "POST", "/events", token=SEND_TOKEN, data=json.dumps(event(1)))
    assert status == 202
    for method, path, data in ADMIN_ROUTES:
        status, body = await _request(base, method, path, token=SEND_TOKEN, data=data)
        assert status == 403 and "admin token" in body, path
        assert (await _request(base, method, path, token=ADMIN_TOKEN, data=data))[0] in (200, 202)
    await wait_until(lambda: len(receiver.requests) >= 1, what="the delivery")
    log = daemon.logs_text()
    assert SEND_TOKEN not in log and ADMIN_TOKEN not in log


async def test_no_tcp_listener_without_tokens(daemon: DaemonProcess) -> None:
    daemon.config["http"] = {"listen": f"127.0.0.1:{free_port()}"}
    await daemon.start(wait=False)
    assert daemon.process is not None
    code = await daemon.process.wait()
    assert code != 0
    assert "needs bearer tokens" in daemon.logs_text()
