"""End to end: the real daemon as a subprocess, real receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import time

from aiohttp import web
from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests.utils import DaemonProcess, Receiver, event, held_until, unix_exchange, wait_until


async def test_delivery_is_signed_and_verifiable(daemon: DaemonProcess, receiver: Receiver) -> None:
    daemon.env["SIGNING_SECRET"] = "whsec_" + base64.b64encode(b"k" * 32).decode()
    daemon.add_webhook("crm", receiver.url, channel={"secret": "${env:SIGNING_SECRET}"})
    await daemon.start()
    status, answer = await daemon.post(event(1, campaign_id=123, sending_domain="mail.example.com"))
    assert (status, answer) == (202, {"accepted": 1, "duplicates": 0})
    await wait_until(lambda: len(receiver.requests) == 1, what="one delivery")
    request = receiver.requests[0]
    verified = StandardWebhook(daemon.env["SIGNING_SECRET"]).verify(request.body, dict(request.headers))
    assert verified["event_id"] == "e1"
    assert verified["campaign_id"] == 123
    assert "bridge" not in verified  # optional fields only when the event had them
    assert request.headers["webhook-id"] == "e1"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("mailhooks/")


async def test_500_twice_then_200_is_delivered_on_the_third_attempt(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    async def flaky(r: Receiver, _request: web.Request) -> web.Response:
        return web.Response(status=500 if len(r.requests) <= 2 else 200)

    receiver.handler = flaky
    daemon.add_webhook("flaky", receiver.url)
    await daemon.start()
    await daemon.post(event(1))
    await wait_until(lambda: len(receiver.requests) == 3, what="three attempts")
    ids = {request.headers["webhook-id"] for request in receiver.requests}
    assert ids == {"e1"}  # the same webhook-id on every retry

    async def delivered() -> bool:
        _, answer = await daemon.request("GET", "/deliveries?state=delivered")
        return len(answer["deliveries"]) == 1

    await wait_until(delivered, what="the delivery to be recorded")
    _, answer = await daemon.request("GET", "/deliveries?state=delivered")
    assert answer["deliveries"][0]["attempts"] == 3


async def test_a_timeout_is_retried(daemon: DaemonProcess, receiver: Receiver) -> None:
    release = asyncio.Event()

    async def hang_first(r: Receiver, _request: web.Request) -> web.Response:
        if len(r.requests) == 1:
            await release.wait()
        return web.Response(status=200)

    receiver.handler = hang_first
    daemon.add_webhook("slow", receiver.url, channel={"timeout": 0.3})
    await daemon.start()
    await daemon.post(event(1))
    await wait_until(lambda: len(receiver.requests) == 2, what="a retry after the timeout")
    release.set()
    logs = [line for line in daemon.logs() if line.get("event") == "delivery_attempt"]
    await wait_until(lambda: any(
        line.get("outcome") == "success" for line in daemon.logs()
        if line.get("event") == "delivery_attempt"
    ), what="a successful attempt")
    assert any("timed out" in str(line.get("error")) for line in daemon.logs()
               if line.get("event") == "delivery_attempt"), logs


async def test_retry_after_is_honoured(daemon: DaemonProcess, receiver: Receiver) -> None:
    async def busy_first(r: Receiver, _request: web.Request) -> web.Response:
        if len(r.requests) == 1:
            return web.Response(status=503, headers={"Retry-After": "1"})
        return web.Response(status=200)

    receiver.handler = busy_first
    daemon.add_webhook("busy", receiver.url)
    await daemon.start()
    await daemon.post(event(1))
    await wait_until(lambda: len(receiver.requests) == 2, what="the retry")
    # The schedule says 0.05 s; the endpoint asked for 1 s.
    assert receiver.requests[1].at - receiver.requests[0].at >= 0.95


async def test_a_slow_endpoint_does_not_delay_a_fast_one(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    release = asyncio.Event()
    slow = await Receiver(handler=held_until(release)).start()
    try:
        daemon.add_webhook("fast", receiver.url)
        daemon.add_webhook("slow", slow.url, channel={"timeout": 60})
        await daemon.start()
        for number in range(30):
            await daemon.post(event(number))
        # Every event reaches the fast endpoint while the slow one has not answered once.
        await wait_until(lambda: len(receiver.requests) == 30, what="all fast deliveries")
        assert not release.is_set()
        assert len(slow.requests) >= 1
    finally:
        release.set()
        await slow.stop()


async def test_kill_9_after_202_loses_nothing(daemon: DaemonProcess, receiver: Receiver) -> None:
    answering = asyncio.Event()

    async def down_until_released(_r: Receiver, _request: web.Request) -> web.Response:
        return web.Response(status=200 if answering.is_set() else 503)

    receiver.handler = down_until_released
    daemon.add_webhook("crm", receiver.url, channel={"retry_schedule": [0.2] * 40})
    await daemon.start()
    status, _ = await daemon.post([event(1), event(2)])
    assert status == 202
    await daemon.kill()
    answering.set()
    await daemon.start()
    await wait_until(
        lambda: {"e1", "e2"} <= {e["event_id"] for e in receiver.events()
                                 if receiver.requests}, what="both events after the restart",
    )


async def test_an_invalid_batch_spools_nothing(daemon: DaemonProcess, receiver: Receiver) -> None:
    daemon.add_webhook("crm", receiver.url)
    await daemon.start()
    status, answer = await daemon.post([event(1), {"event": "exploded", "email": "x"}, event(3)])
    assert status == 400
    assert answer["details"][0]["index"] == 1
    fields = {detail["field"] for detail in answer["details"]}
    assert {"event", "message_id"} <= fields
    # A later valid event is delivered alone: nothing of the bad batch was spooled.
    assert (await daemon.post(event(9)))[0] == 202
    await wait_until(lambda: len(receiver.requests) == 1, what="the valid event")
    _, listing = await daemon.request("GET", "/deliveries")
    assert [row["event_id"] for row in listing["deliveries"]] == ["e9"]


async def test_unknown_fields_and_bad_bodies_are_named(daemon: DaemonProcess) -> None:
    await daemon.start()
    status, answer = await daemon.post(event(1, colour="blue"))
    assert status == 400
    assert answer["details"] == [{"index": 0, "field": "colour", "message": "unknown field"}]
    status, answer = await daemon.post(None, data=b"{not json")
    assert status == 400 and "invalid JSON" in answer["error"]
    status, answer = await daemon.post(None, data=b"\xff\xfe")
    assert status == 400 and "UTF-8" in answer["error"]
    status, answer = await daemon.post([])
    assert status == 400


async def test_ndjson_and_event_id_idempotency(daemon: DaemonProcess, receiver: Receiver) -> None:
    daemon.add_webhook("crm", receiver.url)
    await daemon.start()
    lines = b"\n".join(
        __import__("json").dumps(event(number)).encode() for number in range(3)
    )
    status, answer = await daemon.post(None, data=lines, content_type="application/x-ndjson")
    assert (status, answer) == (202, {"accepted": 3, "duplicates": 0})
    status, answer = await daemon.post(event(1))  # a client retrying after a timeout
    assert (status, answer) == (202, {"accepted": 1, "duplicates": 1})
    await wait_until(lambda: len(receiver.requests) == 3, what="three deliveries")
    await asyncio.sleep(0)  # a fourth would be a bug; the listing below proves there is none
    _, listing = await daemon.request("GET", "/deliveries")
    assert len(listing["deliveries"]) == 3


async def test_limits_answer_413(daemon: DaemonProcess) -> None:
    daemon.config["limits"] = {"max_body_bytes": 2048, "max_batch_events": 2}
    await daemon.start()
    status, answer = await daemon.post([event(1), event(2), event(3)])
    assert status == 413 and "too many events" in answer["error"]
    status, answer = await daemon.post(event(1, broadcast_name="x" * 900) | {"bounce_type": "y" * 99,
                                       "complaint_type": "z" * 99, "link_url": "u" * 1500})
    assert status == 413 and "error" in answer


async def test_a_full_spool_answers_503_with_retry_after(daemon: DaemonProcess) -> None:
    daemon.config["spool"] = {"max_bytes": 65536}
    await daemon.start()
    answers = []
    for batch in range(100):
        events = [event(batch * 20 + n, broadcast_name="x" * 900) for n in range(20)]
        status, answer = await daemon.request("POST", "/events", events)
        answers.append(status)
        if status == 503:
            break
    assert answers[0] == 202 and answers[-1] == 503, answers
    assert "full" in answer["error"]
    connector_status, headers = await _headers(daemon, [event(99999)])
    assert connector_status == 503 and headers.get("Retry-After") == "30"


async def _headers(daemon: DaemonProcess, body: object) -> tuple[int, dict[str, str]]:
    status, headers, _ = await unix_exchange(daemon.socket, "POST", "/events",
                                             json.dumps(body).encode())
    return status, headers


async def test_sigterm_stops_cleanly_and_pending_work_survives(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    receiver.handler = lambda _r, _q: _status(503)
    daemon.add_webhook("crm", receiver.url, channel={"retry_schedule": [0.1] * 40})
    await daemon.start()
    await daemon.post(event(1))
    await wait_until(lambda: len(receiver.requests) >= 1, what="a first attempt")
    assert await daemon.stop(signal.SIGTERM) == 0
    assert any(line.get("event") == "stopped" for line in daemon.logs())
    receiver.handler = lambda _r, _q: _status(200)
    await daemon.start()

    async def delivered() -> bool:
        _, answer = await daemon.request("GET", "/deliveries?state=delivered")
        return len(answer["deliveries"]) == 1

    await wait_until(delivered, what="delivery after the restart")


async def _status(code: int) -> web.Response:
    return web.Response(status=code)


async def test_batches_are_json_arrays(daemon: DaemonProcess, receiver: Receiver) -> None:
    daemon.add_webhook("analytics", receiver.url,
                       channel={"batch": {"max_events": 3, "max_wait": 30}})
    await daemon.start()
    await daemon.post([event(n) for n in range(3)])
    await wait_until(lambda: len(receiver.requests) == 1, what="one batch")
    body = receiver.requests[0].json()
    assert [item["event_id"] for item in body] == ["e0", "e1", "e2"]
    assert receiver.requests[0].headers["webhook-id"].startswith("batch_")


async def test_a_partial_batch_is_sent_after_max_wait(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    daemon.add_webhook("analytics", receiver.url,
                       channel={"batch": {"max_events": 100, "max_wait": 0.3}})
    await daemon.start()
    sent = time.time()
    await daemon.post([event(1), event(2)])
    await wait_until(lambda: len(receiver.requests) == 1, what="the batch after max_wait")
    assert receiver.requests[0].at - sent >= 0.25
    assert len(receiver.requests[0].json()) == 2


async def test_410_gone_ends_retries_and_redirects_are_failures(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    async def gone(_r: Receiver, request: web.Request) -> web.Response:
        if request.path == "/gone":
            return web.Response(status=410)
        return web.Response(status=302, headers={"Location": "http://127.0.0.1:1/elsewhere"})

    receiver.handler = gone
    base = receiver.url.rsplit("/", 1)[0]
    daemon.add_webhook("gone", f"{base}/gone", channel={"retry_schedule": [0.05] * 5})
    daemon.add_webhook("moved", f"{base}/moved", channel={"retry_schedule": [0.05]})
    await daemon.start()
    await daemon.post(event(1))

    async def both_failed() -> bool:
        _, answer = await daemon.request("GET", "/deliveries?state=failed")
        return len(answer["deliveries"]) == 2

    await wait_until(both_failed, what="both deliveries failed")
    paths = [request for request in receiver.requests]
    assert sum(1 for r in paths if r.headers.get("webhook-id") == "e1") == 3  # 1 gone + 2 moved


async def test_at_info_only_retries_and_failures_are_logged_per_attempt(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    async def by_path(_r: Receiver, request: web.Request) -> web.Response:
        return web.Response(status={"/hook/ok": 200, "/hook/gone": 410}.get(request.path, 503))

    receiver.handler = by_path
    daemon.config["log"] = {"format": "json", "level": "info"}
    daemon.add_webhook("ok", receiver.url + "/ok")
    daemon.add_webhook("gone", receiver.url + "/gone")
    daemon.add_webhook("down", receiver.url + "/down", channel={"retry_schedule": [60]})
    await daemon.start()
    assert (await daemon.post(event(1)))[0] == 202

    def attempts() -> dict[str, str]:
        return {str(line["webhook"]): str(line["level"]) for line in daemon.logs()
                if line.get("event") == "delivery_attempt"}

    await wait_until(lambda: len(receiver.requests) == 3 and {"gone", "down"} <= set(attempts()),
                     what="the three first attempts")

    async def recorded() -> bool:
        _, answer = await daemon.request("GET", "/deliveries?state=delivered")
        return len(answer["deliveries"]) == 1

    await wait_until(recorded, what="the success to be recorded")
    assert attempts() == {"gone": "warning", "down": "info"}
    assert not any(line.get("event") == "events_accepted" for line in daemon.logs())
    _, metrics = await daemon.request("GET", "/metrics")
    assert 'mailhooks_deliveries_total{outcome="success",webhook="ok"} 1.0' in metrics


async def test_at_debug_each_request_and_each_success_has_its_line(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    daemon.config["log"] = {"format": "json", "level": "debug"}
    daemon.add_webhook("ok", receiver.url)
    await daemon.start()
    assert (await daemon.post([event(1), event(2)]))[0] == 202
    await wait_until(lambda: sum(
        1 for line in daemon.logs()
        if line.get("event") == "delivery_attempt" and line.get("outcome") == "success"
    ) == 2, what="a debug line per successful attempt")
    accepted = [line for line in daemon.logs() if line.get("event") == "events_accepted"]
    assert [(line["events"], line["level"]) for line in accepted] == [(2, "debug")]
