"""Where deliveries may go (SPEC §5), tried with the addresses that reach this host.

Before: the shipped systemd/mailhooks.yaml set egress.deny without 0.0.0.0/8 and ::/128,
and a config's deny list replaced the default one: http://0.0.0.0:PORT/ and
http://[::]:PORT/ reached a service on loopback, and the Test button handed back 512
bytes of its answer.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from aiohttp import web

from mailhooks.channels.egress import EgressPolicy
from mailhooks.config_file import load_settings
from tests.utils import REPO, DaemonProcess, Receiver, event, wait_until

SECRET_PAGE = b"internal admin page: token=hunter2"


def _shipped_egress() -> dict[str, list[str]]:
    egress = load_settings(REPO / "systemd" / "mailhooks.yaml").egress
    return {"deny": list(egress.deny), "allow": list(egress.allow)}


def test_the_shipped_config_denies_every_form_of_this_host() -> None:
    policy = EgressPolicy(**_shipped_egress())
    for address in ("127.0.0.1", "127.1.2.3", "0.0.0.0", "0.1.2.3", "::", "::1",
                    "::ffff:127.0.0.1", "::ffff:0.0.0.0", "169.254.169.254", "fe80::1"):
        assert policy.is_denied(address), address


async def _answering(handler_body: bytes, host: str) -> Receiver:
    """A service on this host that would hand back something worth stealing."""

    async def internal(_receiver: Receiver, _request: web.Request) -> web.StreamResponse:
        return web.Response(body=handler_body)

    return await Receiver(handler=internal, host=host).start()


@pytest.mark.parametrize("url_host", ["0.0.0.0", "[::]", "localhost", "127.0.0.1", "[::ffff:127.0.0.1]"])
async def test_deliveries_and_the_test_button_never_reach_this_host(
    daemon: DaemonProcess, url_host: str,
) -> None:
    listener = "::" if url_host in ("[::]",) else "0.0.0.0"
    service = await _answering(SECRET_PAGE, listener)
    try:
        daemon.config["egress"] = _shipped_egress()
        daemon.add_webhook("probe", f"http://{url_host}:{service.port}/admin")
        await daemon.start()
        await daemon.post(event(1))
        _, report = await daemon.request("POST", "/webhooks/probe/test")
        assert report["ok"] is False and "denied by the egress rules" in report["error"], report
        assert report["body"] == ""
        await wait_until(lambda: "denied by the egress rules" in daemon.logs_text(), what="the refusal")
        assert service.requests == [], f"{url_host} reached a service on this host"
    finally:
        await service.stop()


needs_unshare = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="a private /etc/hosts needs root and unshare",
)


@needs_unshare
async def test_a_name_that_resolves_to_the_unspecified_address_is_denied(
    daemon: DaemonProcess, short_tmp: Path,
) -> None:
    """DNS says where a name is: here a name that /etc/hosts (in the daemon's own mount
    namespace) points at 0.0.0.0 and at ::ffff:127.0.0.1."""
    probe = await asyncio.create_subprocess_exec("unshare", "-m", "true")
    if await probe.wait() != 0:
        pytest.skip("unshare -m is not permitted here")
    service = await _answering(SECRET_PAGE, "0.0.0.0")
    try:
        hosts = short_tmp / "hosts"
        hosts.write_text("0.0.0.0 rebind-zero.test\n::ffff:127.0.0.1 rebind-mapped.test\n"
                         "127.0.0.1 localhost\n")
        daemon.config["egress"] = _shipped_egress()
        for name in ("rebind-zero.test", "rebind-mapped.test"):
            daemon.add_webhook(name.split(".")[0], f"http://{name}:{service.port}/admin")
        daemon.wrap = ["unshare", "-m", "sh", "-c",
                       f'mount --bind "{hosts}" /etc/hosts && exec "$0" "$@"']
        await daemon.start()
        await daemon.post(event(1))
        await wait_until(lambda: daemon.logs_text().count("denied by the egress rules") >= 2,
                         what="both names refused")
        assert service.requests == []
    finally:
        await service.stop()

