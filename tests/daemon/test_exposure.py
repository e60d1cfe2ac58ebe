"""What the daemon exposes: no secret in any log line, a 0660 socket, only the listeners
configured; and its metrics."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import stat
from pathlib import Path

from aiohttp import web

from tests.utils import DaemonProcess, Receiver, event, run_cli, wait_until

SIGNING = "whsec_" + base64.b64encode(b"signing-secret-bytes-0123456789!").decode()
API_KEY = "api-key-d41d8cd98f00b204e980"
PUSHOVER_TOKEN = "azGDORePK8gMaC0QOYAMyEEuzJnyUi"
PUSHOVER_USER = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"


async def test_no_secret_signature_or_credential_header_in_any_log_line(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    flaky_calls = 0

    async def flaky(_r: Receiver, _request: web.Request) -> web.Response:
        nonlocal flaky_calls
        flaky_calls += 1
        return web.Response(status=500 if flaky_calls % 2 else 200)

    receiver.handler = flaky
    pushover = await Receiver(handler=lambda _r, _q: _pushover_refusal()).start()
    try:
        daemon.env.update(SIGNING=SIGNING, API_KEY=API_KEY, PO_TOKEN=PUSHOVER_TOKEN,
                          PO_USER=PUSHOVER_USER)
        daemon.config["pushover"] = {"api_url": pushover.url.rsplit("/", 1)[0]}
        daemon.add_webhook("crm", receiver.url, channel={
            "secret": "${env:SIGNING}", "headers": {"Authorization": "Bearer ${env:API_KEY}"},
        })
        (daemon.webhooks / "alerts.yaml").write_text(json.dumps({
            "name": "alerts", "events": "all", "channel": {
                "type": "pushover", "user_key": "${env:PO_USER}", "api_token": "${env:PO_TOKEN}",
            },
        }))
        await daemon.start()
        await daemon.post([event(n) for n in range(5)])
        await wait_until(lambda: len(receiver.requests) >= 10, what="deliveries and retries")
        await wait_until(lambda: len(pushover.requests) >= 1, what="the pushover attempt")
        await run_cli("test", "crm", "--socket", str(daemon.socket))
        await run_cli("test", "alerts", "--socket", str(daemon.socket))
        await daemon.request("POST", "/-/reload")
        await daemon.stop()
        signatures = {r.headers.get("webhook-signature", "") for r in receiver.requests} - {""}
        assert signatures
        logs = daemon.logs_text()
        assert "delivery_attempt" in logs
        for secret in (SIGNING, SIGNING[6:], API_KEY, PUSHOVER_TOKEN, PUSHOVER_USER, *signatures):
            assert secret not in logs
        for signature in signatures:
            for part in signature.split():
                assert part.split(",", 1)[1] not in logs
    finally:
        await pushover.stop()


async def _pushover_refusal() -> web.Response:
    return web.json_response(
        {"status": 0, "errors": ["application token is invalid"], "token": "invalid"}, status=400
    )


async def test_the_socket_is_0660_and_a_stale_one_is_replaced(
    daemon: DaemonProcess, short_tmp: Path
) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(daemon.socket))  # bound, never listening: what a crash leaves behind
    stale.close()
    await daemon.start()
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o660


async def test_a_live_socket_is_never_taken_over(daemon: DaemonProcess, short_tmp: Path) -> None:
    await daemon.start()
    (short_tmp / "second").mkdir()
    second = DaemonProcess(short_tmp / "second", {"socket": str(daemon.socket)})
    await second.start(wait=False)
    assert second.process is not None
    code = await asyncio.wait_for(second.process.wait(), 20)
    assert code == 1
    assert "another process is listening" in second.logs_text()
    assert await daemon.healthy()


async def test_tcp_listens_only_where_configured(daemon: DaemonProcess) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    daemon.config["http"] = {"listen": f"127.0.0.1:{port}",
                             "tokens": {"send": ["${env:MTA_TOKEN}"]}}
    daemon.env["MTA_TOKEN"] = "t" * 32
    await daemon.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200")
    started = next(line for line in daemon.logs() if line.get("event") == "started")
    assert started["http"] == f"127.0.0.1:{port}"


async def test_metrics(daemon: DaemonProcess, receiver: Receiver) -> None:
    daemon.add_webhook("crm", receiver.url)
    await daemon.start()
    await daemon.post(event(1))
    await daemon.post([event(2), event(3, event="bounced"), event(4, event="bounced")])
    await daemon.post({"event": "nope"})
    await wait_until(lambda: len(receiver.requests) == 4, what="the deliveries")

    async def counted() -> bool:
        _, text = await daemon.request("GET", "/metrics")
        return 'mailhooks_deliveries_total{outcome="success",webhook="crm"} 4.0' in text

    await wait_until(counted, what="the delivery metric")
    _, text = await daemon.request("GET", "/metrics")
    for name in (
        'mailhooks_events_received_total{event="delivered"} 2.0',
        'mailhooks_events_received_total{event="bounced"} 2.0',
        'mailhooks_events_rejected_total{reason="invalid"} 1.0',
        "mailhooks_delivery_duration_seconds_bucket", "mailhooks_queue_depth",
        "mailhooks_oldest_pending_seconds", "mailhooks_spool_bytes",
        "mailhooks_config_last_reload_successful 1.0", "mailhooks_webhooks_loaded 1.0",
    ):
        assert name in text, name
