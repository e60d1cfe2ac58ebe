"""The commands that talk to the running daemon, and the Test button, end to end."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from tests.utils import DaemonProcess, Receiver, event, run_cli, serve_app, wait_until


async def test_send_and_status(daemon: DaemonProcess, receiver: Receiver, short_tmp: Path) -> None:
    daemon.add_webhook("crm", receiver.url)
    await daemon.start()
    source = short_tmp / "events.json"
    source.write_text(json.dumps([event(1), event(2)]))
    code, out, err = await run_cli("send", str(source), "--config", str(daemon.config_path))
    assert (code, out.strip(), err) == (0, "accepted 2 event(s)", "")
    ndjson = "\n".join(json.dumps(event(n)) for n in (3, 4)).encode()
    code, out, _ = await run_cli("send", "-", "--ndjson", "--socket", str(daemon.socket),
                                 stdin=ndjson)
    assert code == 0 and "accepted 2" in out
    await wait_until(lambda: len(receiver.requests) == 4, what="four deliveries")
    code, out, _ = await run_cli("status", "--socket", str(daemon.socket))
    assert code == 0
    assert "1 of 100 webhooks loaded, ok" in out and "failing:  none" in out
    code, out, _ = await run_cli("status", "--json", "--socket", str(daemon.socket))
    assert json.loads(out)["config"]["webhooks"] == 1


async def test_send_reports_a_refused_batch(daemon: DaemonProcess) -> None:
    await daemon.start()
    code, _, err = await run_cli("send", "-", "--socket", str(daemon.socket),
                                 stdin=json.dumps({"event": "delivered"}).encode())
    assert code == 1
    assert "refused (400)" in err and "email" in err and "Traceback" not in err


async def test_commands_without_a_daemon_say_so_in_one_line(short_tmp: Path) -> None:
    code, _, err = await run_cli("status", "--socket", str(short_tmp / "none.sock"))
    assert code == 1
    assert err.count("\n") == 1 and "cannot reach the daemon" in err


async def test_deliveries_and_replay(daemon: DaemonProcess, receiver: Receiver) -> None:
    receiver.handler = lambda _r, _q: _answer(500)
    daemon.add_webhook("crm", receiver.url, channel={"retry_schedule": [0.05]})
    await daemon.start()
    await daemon.post([event(1), event(2)])

    async def failed() -> bool:
        _, answer = await daemon.request("GET", "/deliveries?state=failed&webhook=crm")
        return len(answer["deliveries"]) == 2

    await wait_until(failed, what="two failed deliveries")
    code, out, _ = await run_cli("deliveries", "--failed", "--webhook", "crm",
                                 "--socket", str(daemon.socket))
    assert code == 0 and out.count("failed") >= 2 and "attempts=2" in out and "HTTP 500" in out
    code, out, _ = await run_cli("deliveries", "--json", "--socket", str(daemon.socket))
    rows = json.loads(out)["deliveries"]
    receiver.handler = lambda _r, _q: _answer(200)
    code, out, _ = await run_cli("replay", str(rows[0]["id"]), "--socket", str(daemon.socket))
    assert (code, out.strip()) == (0, "re-queued 1 failed deliveries")

    async def delivered(count: int) -> bool:
        _, answer = await daemon.request("GET", "/deliveries?state=delivered")
        return len(answer["deliveries"]) == count

    await wait_until(lambda: delivered(1), what="the replayed delivery")
    code, out, _ = await run_cli("replay", "--webhook", "crm", "--socket", str(daemon.socket))
    assert (code, out.strip()) == (0, "re-queued 1 failed deliveries")
    await wait_until(lambda: delivered(2), what="the second replayed delivery")


async def _answer(status: int) -> web.Response:
    return web.Response(status=status, text="answer from the receiver")


async def test_the_test_button(daemon: DaemonProcess, receiver: Receiver) -> None:
    daemon.add_webhook("crm/opens", receiver.url, status="inactive",
                       events=["newsletter_opened", "newsletter_clicked"])
    await daemon.start()
    code, out, err = await run_cli("test", "crm/opens", "--socket", str(daemon.socket))
    assert code == 0, out + err
    assert "newsletter_opened delivered: HTTP 200" in out
    assert "answer:" not in out  # an answer from a private address is never shown
    sent = receiver.requests[0].json()
    assert sent["test"] is True and sent["event"] == "newsletter_opened"
    code, out, _ = await run_cli("test", "crm/opens", "--event", "newsletter_clicked", "--json",
                                 "--socket", str(daemon.socket))
    answer = json.loads(out)
    assert answer["ok"] and answer["status"] == 200 and answer["event"] == "newsletter_clicked"
    assert receiver.requests[1].json()["link_url"].startswith("https://")
    # Not through the spool: nothing was queued.
    _, listing = await daemon.request("GET", "/deliveries")
    assert listing["deliveries"] == []
    status, answer = await daemon.request("POST", "/webhooks/crm/opens/test", {"event": "bounced"})
    assert status == 200 and answer["event"] == "bounced"


async def test_the_test_button_reports_failures(daemon: DaemonProcess, receiver: Receiver) -> None:
    receiver.handler = lambda _r, _q: _answer(500)
    daemon.add_webhook("crm", receiver.url)
    await daemon.start()
    code, out, _ = await run_cli("test", "crm", "--socket", str(daemon.socket))
    assert code == 1 and "HTTP 500" in out
    assert "answer from the receiver" not in out  # a private address's answer stays there
    code, _, err = await run_cli("test", "nope", "--socket", str(daemon.socket))
    assert code == 1 and "no webhook 'nope'" in err


async def test_the_test_button_for_pushover(daemon: DaemonProcess) -> None:
    forms: list[dict[str, str]] = []

    async def messages(request: web.Request) -> web.Response:
        forms.append(dict(await request.post()))  # type: ignore[arg-type]
        return web.json_response({"status": 1, "request": "r1"},
                                 headers={"X-Limit-App-Remaining": "9999"})

    app_runner, port = await serve_app(_app(messages))
    try:
        daemon.config["pushover"] = {"api_url": f"http://127.0.0.1:{port}"}
        daemon.env.update(PO_USER="u" * 30, PO_TOKEN="a" * 30)
        path = daemon.webhooks / "alerts.yaml"
        path.write_text(json.dumps({
            "name": "Bounce Alerts", "events": ["bounced", "complaint"],
            "channel": {"type": "pushover", "user_key": "${env:PO_USER}",
                        "api_token": "${env:PO_TOKEN}", "sound": "cash_register"},
        }))
        await daemon.start()
        code, out, _ = await run_cli("test", "alerts", "--socket", str(daemon.socket))
        assert code == 0, out
        assert forms[0]["sound"] == "cashregister"
        assert forms[0]["title"].startswith("Bounced")
        _, metrics = await daemon.request("GET", "/metrics")
        assert "mailhooks_pushover_app_remaining 9999.0" in metrics
    finally:
        await app_runner.cleanup()


def _app(handler: object) -> web.Application:
    app = web.Application()
    app.router.add_post("/1/messages.json", handler)  # type: ignore[arg-type]
    return app
