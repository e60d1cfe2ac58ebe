"""Hot reload (SPEC §6): files changed under the running daemon, waited on, never slept on."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests.utils import DaemonProcess, Receiver, event, run_cli, wait_until


async def _ids(daemon: DaemonProcess) -> set[str]:
    _, report = await daemon.request("GET", "/webhooks")
    return {hook["id"] for hook in report["webhooks"]}


async def _report(daemon: DaemonProcess) -> dict:  # type: ignore[type-arg]
    _, report = await daemon.request("GET", "/webhooks")
    return report  # type: ignore[no-any-return]


async def test_a_new_file_starts_receiving_events(daemon: DaemonProcess, receiver: Receiver) -> None:
    await daemon.start()
    daemon.add_webhook("crm/opens", receiver.url)

    async def loaded() -> bool:
        return await _ids(daemon) == {"crm/opens"}

    await wait_until(loaded, 5, "the new webhook")
    await daemon.post(event(1))
    await wait_until(lambda: len(receiver.requests) == 1, what="delivery to the new webhook")


@pytest.fixture
async def refusing() -> AsyncIterator[Receiver]:
    """An endpoint that answers every request 503."""
    async def refuse(_r: Receiver, _q: web.Request) -> web.Response:
        return web.Response(status=503)

    endpoint = await Receiver(handler=refuse).start()
    yield endpoint
    await endpoint.stop()


async def test_a_changed_file_applies_to_later_events_and_pending_retries(
    daemon: DaemonProcess, receiver: Receiver, refusing: Receiver
) -> None:
    daemon.add_webhook("crm", refusing.url, channel={"retry_schedule": [0.2] * 40})
    await daemon.start()
    await daemon.post(event(1))
    await wait_until(lambda: len(refusing.requests) >= 1, what="a failing first attempt")
    daemon.add_webhook("crm", receiver.url, channel={"retry_schedule": [0.2] * 40})
    # The pending retry goes to the new URL, and so does a new event.
    await wait_until(lambda: len(receiver.requests) >= 1, 10, "the retry at the new URL")
    await daemon.post(event(2))
    await wait_until(lambda: {e["event_id"] for e in receiver.events()} == {"e1", "e2"},
                     what="both events at the new URL")


async def test_a_changed_file_closes_an_open_breaker(
    daemon: DaemonProcess, receiver: Receiver, refusing: Receiver
) -> None:
    # An open breaker held the lane for its cooldown after the file was fixed (the first
    # delivery came seconds later); the fixed file is a new endpoint to try.
    daemon.add_webhook("crm", refusing.url, channel={"retry_schedule": [0.05] * 40})
    await daemon.start()
    await daemon.post([event(number) for number in range(1, 8)])

    async def breaker(value: str) -> bool:
        _, metrics = await daemon.request("GET", "/metrics")
        return f'mailhooks_circuit_open{{webhook="crm"}} {value}' in metrics

    await wait_until(lambda: breaker("1.0"), 10, "the breaker open")
    daemon.add_webhook("crm", receiver.url, channel={"retry_schedule": [0.05] * 40})
    await wait_until(lambda: breaker("0.0"), 5, "the breaker closed by the change")
    await wait_until(lambda: len(receiver.events()) == 7, 10, "every event at the new URL")


async def test_a_deleted_file_drops_its_pending_deliveries(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    receiver.handler = lambda _r, _q: _answer(503)
    path = daemon.add_webhook("crm", receiver.url, channel={"retry_schedule": [0.2] * 40})
    await daemon.start()
    await daemon.post(event(1))
    await wait_until(lambda: len(receiver.requests) >= 1, what="a first attempt")
    path.unlink()

    async def dropped() -> bool:
        _, answer = await daemon.request("GET", "/deliveries?state=dropped")
        return len(answer["deliveries"]) == 1

    await wait_until(dropped, 5, "the pending delivery to be dropped")
    await wait_until(lambda: any(
        line.get("event") == "webhook_removed" and line.get("dropped_deliveries") == 1
        for line in daemon.logs()
    ), what="the log line saying so")
    _, metrics = await daemon.request("GET", "/metrics")
    assert 'mailhooks_deliveries_total{outcome="dropped",webhook="crm"} 1.0' in metrics


async def _answer(status: int) -> web.Response:
    return web.Response(status=status)


async def test_an_invalid_file_keeps_its_last_good_version(
    daemon: DaemonProcess, receiver: Receiver, short_tmp: Path
) -> None:
    path = daemon.add_webhook("crm", receiver.url)
    await daemon.start()
    path.write_text("name: [unclosed\n")

    async def stale() -> bool:
        report = await _report(daemon)
        return not report["config_ok"] and report["webhooks"][0]["state"] == "stale"

    await wait_until(stale, 5, "the refused reload")
    report = await _report(daemon)
    assert report["errors"][0].startswith(f"{path}:2:1:")
    _, metrics = await daemon.request("GET", "/metrics")
    assert "mailhooks_config_last_reload_successful 0.0" in metrics
    code, out, _ = await run_cli("status", "--socket", str(daemon.socket))
    assert code == 0 and f"{path}:2:1:" in out
    # The last good version still delivers.
    await daemon.post(event(1))
    await wait_until(lambda: len(receiver.requests) == 1, what="delivery by the last good version")
    assert any(line.get("event") == "reload_failed" for line in daemon.logs())
    daemon.add_webhook("crm", receiver.url)

    async def healed() -> bool:
        return bool((await _report(daemon))["config_ok"])

    await wait_until(healed, 5, "the fixed file")
    _, metrics = await daemon.request("GET", "/metrics")
    assert "mailhooks_config_last_reload_successful 1.0" in metrics


async def test_a_webhook_beyond_the_limit_is_refused(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    daemon.config["limits"] = {"max_webhooks": 2}
    daemon.add_webhook("b", receiver.url)
    daemon.add_webhook("c", receiver.url)
    await daemon.start()
    daemon.add_webhook("a", receiver.url)  # sorts first, but b and c were running

    async def refused() -> bool:
        report = await _report(daemon)
        return any("limit" in error for error in report["errors"])

    await wait_until(refused, 5, "the refusal")
    assert await _ids(daemon) == {"b", "c"}
    await daemon.post(event(1))
    await wait_until(lambda: len(receiver.requests) == 2, what="b and c still delivering")


async def test_sighup_and_the_api_reload_and_re_resolve_file_secrets(
    daemon: DaemonProcess, receiver: Receiver, short_tmp: Path
) -> None:
    secret_file = short_tmp / "signing-secret"
    old = "whsec_" + base64.b64encode(b"o" * 32).decode()
    new = "whsec_" + base64.b64encode(b"n" * 32).decode()
    secret_file.write_text(old + "\n")
    daemon.add_webhook("crm", receiver.url, channel={"secret": f"${{file:{secret_file}}}"})
    await daemon.start()
    await daemon.post(event(1))
    await wait_until(lambda: len(receiver.requests) == 1, what="the first delivery")
    StandardWebhook(old).verify(receiver.requests[0].body, dict(receiver.requests[0].headers))

    secret_file.write_text(new + "\n")
    await daemon.send_signal(signal.SIGHUP)
    await wait_until(lambda: any(line.get("reason") == "sighup" for line in daemon.logs()),
                     what="the SIGHUP reload")
    await daemon.post(event(2))
    await wait_until(lambda: len(receiver.requests) == 2, what="the second delivery")
    StandardWebhook(new).verify(receiver.requests[1].body, dict(receiver.requests[1].headers))

    status, report = await daemon.request("POST", "/-/reload")
    assert status == 200 and report["ok"] and report["reason"] == "api"


def _git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(directory), "-c", "user.name=t", "-c", "user.email=t@t",
                    *args], check=True, capture_output=True)


async def test_a_git_checkout_applies_as_one_consistent_reload(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    _git(daemon.webhooks, "init", "-q", "-b", "main")
    for number in range(8):
        daemon.add_webhook(f"main-{number}", receiver.url)
    _git(daemon.webhooks, "add", "-A")
    _git(daemon.webhooks, "commit", "-qm", "main")
    _git(daemon.webhooks, "checkout", "-q", "-b", "other")
    _git(daemon.webhooks, "rm", "-q", "*.yaml")
    for number in range(8):
        daemon.add_webhook(f"other-{number}", receiver.url)
    _git(daemon.webhooks, "add", "-A")
    _git(daemon.webhooks, "commit", "-qm", "other")
    _git(daemon.webhooks, "checkout", "-q", "main")
    await daemon.start()
    assert await _ids(daemon) == {f"main-{n}" for n in range(8)}
    reloads_before = len([line for line in daemon.logs() if line.get("event") == "reload"])
    _git(daemon.webhooks, "checkout", "-q", "other")

    async def switched() -> bool:
        return await _ids(daemon) == {f"other-{n}" for n in range(8)}

    await wait_until(switched, 5, "the checkout to apply")
    reloads = [line for line in daemon.logs() if line.get("event") == "reload"][reloads_before:]
    # Every reload saw a whole branch, never half of each.
    assert all(line["webhooks"] == 8 for line in reloads), reloads


async def test_a_symlinked_directory_swap_is_seen(
    daemon: DaemonProcess, receiver: Receiver, short_tmp: Path
) -> None:
    versions = {name: short_tmp / name for name in ("v1", "v2")}
    for name, directory in versions.items():
        directory.mkdir()
        (directory / f"{name}.yaml").write_text(json.dumps({
            "name": name, "events": "all", "channel": {"type": "web", "url": receiver.url},
        }))
    link = short_tmp / "current"
    link.symlink_to(versions["v1"])
    daemon.config["webhooks_dir"] = str(link)
    await daemon.start()
    assert await _ids(daemon) == {"v1"}
    swap = short_tmp / "current.new"
    swap.symlink_to(versions["v2"])
    os.replace(swap, link)  # the atomic swap git-sync and ConfigMaps do

    async def swapped() -> bool:
        return await _ids(daemon) == {"v2"}

    await wait_until(swapped, 5, "the swap to apply")
    # And the rebuilt watcher follows changes in the new target.
    (versions["v2"] / "more.yaml").write_text(json.dumps({
        "name": "more", "events": "all", "channel": {"type": "web", "url": receiver.url},
    }))

    async def followed() -> bool:
        return await _ids(daemon) == {"v2", "more"}

    await wait_until(followed, 5, "a change in the new target")


async def test_nothing_lost_nothing_doubled_across_twenty_changes(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    daemon.add_webhook("stable", receiver.url)
    await daemon.start()
    accepted: list[str] = []
    stop = asyncio.Event()

    async def stream() -> None:
        number = 0
        while not stop.is_set():
            status, _ = await daemon.post(event(number))
            if status == 202:
                accepted.append(f"e{number}")
            number += 1
            await asyncio.sleep(0.005)

    streaming = asyncio.create_task(stream())
    base = receiver.url.rsplit("/", 1)[0]
    try:
        for change in range(20):
            daemon.add_webhook("stable", receiver.url, name=f"stable v{change}")
            if change % 2:
                daemon.add_webhook("other", f"{base}/other")
            else:
                (daemon.webhooks / "other.yaml").unlink(missing_ok=True)
            await daemon.reload_seen(change + 2)
    finally:
        stop.set()
        await streaming
    assert len(accepted) > 20

    def delivered(path: str) -> list[str]:
        return [r.json()["event_id"] for r in receiver.requests if r.path == path]

    await wait_until(lambda: set(accepted) <= set(delivered("/hook")),
                     what="every accepted event delivered to the stable webhook")
    stable = delivered("/hook")
    assert sorted(stable) == sorted(set(stable)), "an event reached the stable webhook twice"
    other = delivered("/other")
    assert len(other) == len(set(other)), "an event reached the other webhook twice"
    print(f"accepted {len(accepted)} events across 20 changes; other webhook got {len(other)}")
