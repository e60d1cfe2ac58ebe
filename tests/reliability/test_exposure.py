"""What a run exposes: no secret, signature or credential header in the whole log; a 0660
socket; no TCP listener unless configured; and egress.deny checked on resolved addresses."""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
from pathlib import Path

from aiohttp import web

from tests.reliability.conftest import HostReceiver, deliveries, log_lines
from tests.utils import DaemonProcess, Receiver, event, run_cli, wait_until

SIGNING = "whsec_" + base64.b64encode(b"reliability-signing-key-0123456").decode()
FILE_SECRET = "file-signing-secret-7c1e0b9f3a"
API_KEY = "api-key-from-credential-55d1e0c4"
TOKEN_HEADER = "token-from-env-9a8b7c6d5e"
PUSHOVER_TOKEN = "aPushoverTokenFromCredential123"
PUSHOVER_USER = "uPushoverUserFromFile4567890ab"


def _listening_tcp_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[len("socket:["):-1])
    return found


async def test_a_whole_run_leaks_no_secret(daemon: DaemonProcess, short_tmp: Path) -> None:
    calls = {"crm": 0}

    async def flaky(_r: Receiver, _request: web.Request) -> web.Response:
        calls["crm"] += 1
        return web.Response(status=500 if calls["crm"] % 2 else 200)

    async def refuse(_r: Receiver, _request: web.Request) -> web.Response:
        return web.Response(status=503, text=f"echo {API_KEY}")  # a body echoing a secret

    async def pushover_down(_r: Receiver, _request: web.Request) -> web.Response:
        return web.json_response({"status": 0, "errors": ["busy"]}, status=500)

    crm = await Receiver(handler=flaky).start()
    failing = await Receiver(handler=refuse).start()
    pushover = await Receiver(handler=pushover_down).start()
    try:
        credentials = short_tmp / "credentials"
        credentials.mkdir()
        (credentials / "api-key").write_text(API_KEY + "\n")
        (credentials / "pushover-token").write_text(PUSHOVER_TOKEN)
        secret_file = short_tmp / "signing.secret"
        secret_file.write_text(FILE_SECRET + "\n")
        user_file = short_tmp / "pushover.user"
        user_file.write_text(PUSHOVER_USER + "\n")
        daemon.env.update(SIGNING=SIGNING, TOKEN_HEADER=TOKEN_HEADER,
                          CREDENTIALS_DIRECTORY=str(credentials))
        daemon.config["pushover"] = {"api_url": f"http://127.0.0.1:{pushover.port}"}
        daemon.add_webhook("crm", crm.url, channel={
            "secret": ["${env:SIGNING}", f"${{file:{secret_file}}}"],
            "headers": {"X-Api-Key": "${credential:api-key}", "X-Token": "${env:TOKEN_HEADER}"},
        })
        # One event only for the failing webhook: its attempts stay under the breaker's 5.
        daemon.add_webhook("failing", failing.url, filters={"sending_node": ["fail"]}, channel={
            "secret": f"${{file:{secret_file}}}", "retry_schedule": [0.05],
            "headers": {"Authorization": "Bearer ${credential:api-key}"},
        })
        (daemon.webhooks / "alerts.yaml").write_text(json.dumps({
            "name": "alerts", "events": "all", "channel": {
                "type": "pushover", "user_key": f"${{file:{user_file}}}",
                "api_token": "${credential:pushover-token}"},
        }))
        await daemon.start()
        assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o660
        # Nothing listens on TCP without `http:`.
        assert daemon.process is not None
        tcp = _socket_inodes(daemon.process.pid) & _listening_tcp_inodes()
        assert not tcp, f"the daemon listens on TCP: {tcp}"

        status, _ = await daemon.post([event(n) for n in range(3)] + [event(3, sending_node="fail")])
        assert status == 202
        await wait_until(lambda: len(crm.requests) >= 8, what="deliveries and retries")

        async def failed() -> bool:
            return len(await deliveries(daemon, state="failed", webhook="failing")) == 1

        await wait_until(failed, what="the failing webhook's deliveries to fail")
        await wait_until(lambda: len(pushover.requests) >= 1, what="a pushover attempt")
        for webhook in ("crm", "failing", "alerts"):
            await run_cli("test", webhook, "--socket", str(daemon.socket))
        await daemon.request("POST", "/-/reload")
        await daemon.send_signal(signal.SIGHUP)
        await daemon.reload_seen(3)
        status, answer = await daemon.request("POST", "/deliveries/replay", {"webhook": "failing"})
        assert status == 200 and answer["replayed"] == 1
        await wait_until(failed, what="the replayed deliveries to fail again")
        await run_cli("deliveries", "--failed", "--socket", str(daemon.socket))
        await run_cli("status", "--socket", str(daemon.socket))
        await daemon.stop()

        requests = crm.requests + failing.requests
        signatures = {r.headers.get("webhook-signature", "") for r in requests} - {""}
        assert signatures
        parts = {part.split(",", 1)[1] for value in signatures for part in value.split()}
        logs = daemon.logs_text()
        assert "delivery_attempt" in logs and "webhook_test" in logs
        for value in (SIGNING, SIGNING[len("whsec_"):], FILE_SECRET, API_KEY, TOKEN_HEADER,
                      PUSHOVER_TOKEN, PUSHOVER_USER, *signatures, *parts):
            assert value not in logs, f"{value[:6]}… is in the log"
        for request in pushover.requests:  # what Pushover got was the real thing
            form = (await _form(request.body))
            assert form.get("token") == PUSHOVER_TOKEN and form.get("user") == PUSHOVER_USER
    finally:
        for server in (crm, failing, pushover):
            await server.stop()


async def _form(body: bytes) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(body.decode()))


async def test_egress_deny_is_checked_on_the_resolved_address(daemon: DaemonProcess) -> None:
    """The default egress.deny refuses loopback by literal, by name, and by the other
    spellings a resolver turns into a loopback address."""
    receiver = await Receiver().start()
    receiver6 = await HostReceiver(host="::1").start()
    try:
        del daemon.config["egress"]  # the default deny list
        port, port6 = receiver.port, receiver6.port
        urls = {
            "v4": f"http://127.0.0.1:{port}/v4",
            "name": f"http://localhost:{port}/name",
            "v6": f"http://[::1]:{port6}/v6",
            "mapped": f"http://[::ffff:127.0.0.1]:{port}/mapped",
            "short": f"http://127.1:{port}/short",
            "decimal": f"http://2130706433:{port}/decimal",
        }
        for webhook, url in urls.items():
            daemon.add_webhook(webhook, url, channel={"retry_schedule": [0.05, 0.05]})
        await daemon.start(config_ok=False)
        _, report = await daemon.request("GET", "/webhooks")
        loaded = {hook["id"] for hook in report["webhooks"]}
        assert {"v4", "name", "v6"} <= loaded, report["errors"]
        status, _ = await daemon.post(event(1))
        assert status == 202

        async def all_failed() -> bool:
            rows = await deliveries(daemon)
            return len(rows) == len(loaded) and all(row["state"] == "failed" for row in rows)

        await wait_until(all_failed, 15, "every delivery to a loopback address to fail")
        assert receiver.requests == [] and receiver6.requests == [], "egress.deny was bypassed"
        for row in await deliveries(daemon):  # (127.1 and 2130706433 are refused as URLs)
            if row["webhook_id"] in ("v4", "name", "v6", "mapped"):
                assert "denied" in (row["last_error"] or ""), row
        assert any("::1" in (line.get("error") or "")
                   for line in log_lines(daemon, "delivery_attempt", webhook="v6"))
    finally:
        await receiver.stop()
        await receiver6.stop()


async def test_egress_deny_covers_the_unspecified_address(daemon: DaemonProcess) -> None:
    """`0.0.0.0` and `::` connect to the local host on Linux: with the default deny list
    (meant to keep deliveries off loopback) they must not reach a local receiver."""
    receiver = await Receiver().start()
    receiver6 = await HostReceiver(host="::1").start()
    try:
        del daemon.config["egress"]
        daemon.add_webhook("zero", f"http://0.0.0.0:{receiver.port}/zero",
                           channel={"retry_schedule": [0.05]})
        daemon.add_webhook("zero6", f"http://[::]:{receiver6.port}/zero6",
                           channel={"retry_schedule": [0.05]})
        await daemon.start()
        await daemon.post(event(1))

        async def settled() -> bool:
            rows = await deliveries(daemon)
            return len(rows) == 2 and all(row["state"] != "pending" for row in rows)

        await wait_until(settled, 15, "both deliveries to settle")
        reached = [r.path for r in receiver.requests + receiver6.requests]
        assert not reached, f"a loopback receiver was reached through {reached}"
    finally:
        await receiver.stop()
        await receiver6.stop()
