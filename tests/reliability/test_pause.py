"""A webhook that only fails is paused by the daemon (SPEC §5), and resumed by an
operator or by a change to its file; its file is never touched."""

from __future__ import annotations

import json
from typing import Any

from tests.reliability.conftest import closed_port, deliveries, log_lines
from tests.utils import DaemonProcess, Receiver, event, run_cli, wait_until

# Five failures 0.4 s apart (±20 %) span more than pause_after's second, so the webhook
# pauses at the fifth, before its circuit breaker would wait ten seconds for a probe.
FAILING = {"retry_schedule": [0.4] * 50, "pause_after": 1}


async def _paused(daemon: DaemonProcess, webhook_id: str) -> bool:
    _, report = await daemon.request("GET", "/webhooks")
    return any(hook["id"] == webhook_id and hook["state"] == "paused" for hook in report["webhooks"])


async def _attempts(daemon: DaemonProcess) -> list[Any]:
    return [row["attempts"] for row in await deliveries(daemon, webhook="crm")]


async def test_pause_after_sustained_failure_and_resume_by_command(daemon: DaemonProcess) -> None:
    path = daemon.add_webhook("crm", f"http://127.0.0.1:{closed_port()}/hook", channel=FAILING)
    before = path.read_bytes()
    await daemon.start()
    await daemon.post(event(1))
    await wait_until(lambda: _paused(daemon, "crm"), 20, "the webhook paused")
    assert path.read_bytes() == before, "the file is the repository's, never the daemon's"
    assert len(log_lines(daemon, "webhook_paused", webhook="crm")) == 1
    _, metrics = await daemon.request("GET", "/metrics")
    assert 'mailhooks_webhook_paused{webhook="crm"} 1.0' in metrics
    code, out, _ = await run_cli("status", "--socket", str(daemon.socket))
    assert code == 0 and "paused (mailhooks resume crm)" in out
    # Paused: no more attempts; the delivery stays pending, and new events still spool.
    [row] = await deliveries(daemon, webhook="crm")
    assert row["state"] == "pending"
    await daemon.post(event(2))
    assert (await _attempts(daemon))[-1] == row["attempts"]
    # A replay of a paused webhook's deliveries says that nothing goes until it is resumed.
    code, out, _ = await run_cli("replay", "--webhook", "crm", "--now", "--socket", str(daemon.socket))
    assert code == 0 and "crm is paused: nothing goes to it until mailhooks resume crm" in out

    code, out, err = await run_cli("resume", "crm", "--socket", str(daemon.socket))
    assert code == 0 and out.startswith("crm: resumed"), err
    await wait_until(lambda: _attempts_grew(daemon, row["attempts"]), 20, "attempts after resume")
    assert log_lines(daemon, "webhook_resumed", webhook="crm", reason="resumed by an operator")
    code, out, _ = await run_cli("resume", "nope", "--socket", str(daemon.socket))
    assert code == 1


async def _attempts_grew(daemon: DaemonProcess, before: int) -> bool:
    return any(attempts > before for attempts in await _attempts(daemon))


async def test_a_change_to_the_file_resumes_it(daemon: DaemonProcess, receiver: Receiver) -> None:
    daemon.add_webhook("crm", f"http://127.0.0.1:{closed_port()}/hook", channel=FAILING)
    await daemon.start()
    await daemon.post(event(1))
    await wait_until(lambda: _paused(daemon, "crm"), 20, "the webhook paused")
    # The fix lands as a commit: the file now points at the working endpoint.
    daemon.add_webhook("crm", receiver.url, channel=FAILING)
    await wait_until(lambda: len(receiver.requests) == 1, 20, "the delivery after the change")
    assert not await _paused(daemon, "crm")
    assert json.loads(receiver.requests[0].body)["event_id"] == "e1"
    assert log_lines(daemon, "webhook_resumed", webhook="crm", reason="file changed")
