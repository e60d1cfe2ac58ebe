"""`mailhooks listen` as a process, with the daemon delivering to it: what it prints, what
it verifies, what it answers, and that Ctrl-C stops it with exit 0."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from mailhooks.channels.signing import keyed, sign, signing_key
from tests.utils import BASELINE, DaemonProcess, event, run_cli, wait_until

SECRET = "the-demo-signing-secret-0123456789"
PORT_LINE = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/$")
# The first line of a delivery: "HH:MM:SS POST /path | id … | sent … | verdict".
HEADLINE = re.compile(r"^\d\d:\d\d:\d\d [A-Z]+ /")


class Listener:
    """`mailhooks listen --port 0 ARGS` in a subprocess; its output lines as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.out: list[str] = []
        self.err: list[str] = []
        self.port = 0
        self._readers = [asyncio.create_task(self._read(process.stdout, self.out)),
                         asyncio.create_task(self._read(process.stderr, self.err))]

    @classmethod
    async def start(cls, *args: str, env: dict[str, str] | None = None) -> Listener:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mailhooks", "listen", "--port", "0", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **({"PYTHONPATH": BASELINE} if BASELINE else {}), **(env or {})},
        )
        listener = cls(process)
        await wait_until(listener._banner_read, 20, "the listener's banner")
        return listener

    @staticmethod
    async def _read(stream: asyncio.StreamReader | None, into: list[str]) -> None:
        assert stream is not None
        async for line in stream:
            into.append(line.decode().rstrip("\n"))

    def _banner_read(self) -> bool:
        """Whether the whole banner is in: its port line, and its last line (a test reads
        the lines between, which may come in a read of their own)."""
        if self.process.returncode is not None:
            raise AssertionError(f"listen exited {self.process.returncode}: {self.err}")
        shown = self.out + self.err
        for line in shown:
            if (match := PORT_LINE.search(line)) is not None:
                self.port = int(match[1])
                return "  Ctrl-C to stop" in shown
        return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def headlines(self) -> list[str]:
        return [line for line in self.out if HEADLINE.match(line)]

    async def wait_for_headlines(self, count: int, timeout: float = 15) -> list[str]:
        await wait_until(lambda: len(self.headlines()) >= count, timeout, f"{count} deliveries")
        return self.headlines()

    async def stop(self) -> int:
        """Ctrl-C, as a terminal sends it; the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(self.process.wait(), 10)
        await asyncio.gather(*self._readers)
        return code


@pytest.fixture
async def listeners() -> AsyncIterator[list[Listener]]:
    """Listeners started by a test, stopped (and proved to exit 0 on Ctrl-C) after it."""
    started: list[Listener] = []
    yield started
    for listener in started:
        assert await listener.stop() == 0, listener.err


async def listen(listeners: list[Listener], *args: str, secret: str | None = SECRET) -> Listener:
    env = {"LISTEN_SECRET": secret} if secret is not None else {}
    given = ("--secret", "${env:LISTEN_SECRET}") if secret is not None else ()
    listener = await Listener.start(*given, *args, env=env)
    listeners.append(listener)
    return listener


async def signed_daemon(daemon: DaemonProcess, url: str, secret: str = SECRET) -> DaemonProcess:
    daemon.env["HOOK_SECRET"] = secret
    daemon.add_webhook("hook", url, channel={"secret": "${env:HOOK_SECRET}"})
    return await daemon.start()


async def test_the_daemons_delivery_arrives_verified(
    daemon: DaemonProcess, listeners: list[Listener]
) -> None:
    listener = await listen(listeners)
    assert "  signatures: checked with ${env:LISTEN_SECRET}" in listener.out
    await signed_daemon(daemon, listener.url)
    assert (await daemon.post(event(1)))[0] == 202
    [headline] = await listener.wait_for_headlines(1)
    assert re.search(r" POST /hook \| id e1 \| sent \d{4}-\d\d-\d\d .* \| signature verified$", headline)
    await wait_until(lambda: listener.out[-1:] == [""], 5, "the whole delivery")
    block = listener.out[listener.out.index(headline):]
    assert "  content-type: application/json" in block
    assert any(line.startswith("  user-agent: mailhooks/") for line in block)
    assert '    "email": "r1@example.com",' in block
    assert block[-2:] == ["  answered 200", ""]


async def test_a_webhook_signing_with_another_secret_does_not_match(
    daemon: DaemonProcess, listeners: list[Listener]
) -> None:
    listener = await listen(listeners)
    await signed_daemon(daemon, listener.url, secret="not-the-listeners-secret-at-all")
    assert (await daemon.post(event(1)))[0] == 202
    [headline] = await listener.wait_for_headlines(1)
    assert headline.endswith("| NOT VERIFIED: the signature does not match: a wrong secret, "
                             "or the body changed on the way")


@pytest.mark.parametrize("secret", [SECRET, None])
async def test_a_hostile_timestamp_is_malformed_not_a_crash(
    listeners: list[Listener], secret: str | None
) -> None:
    # 30 digits overflowed the date shown; 5,000 digits Python's int(); both were a 500
    # with a traceback, and the delivery was never printed.
    listener = await listen(listeners, secret=secret)
    body = json.dumps(event(1)).encode()
    stamps = ["9" * 30, "1" * 5000, "253402300799", "１２３"]
    async with aiohttp.ClientSession() as session:
        for stamp in stamps:
            headers = {"webhook-id": "msg_1", "webhook-timestamp": stamp, "webhook-signature": "v1,AAAA",
                       "content-type": "application/json"}
            async with session.post(listener.url, data=body, headers=headers) as answer:
                assert answer.status == 200
    headlines = await listener.wait_for_headlines(len(stamps))
    assert all("| sent " not in line for line in headlines)
    if secret is not None:
        assert all("NOT VERIFIED: malformed headers: webhook-timestamp" in line for line in headlines)
    assert not any("Traceback" in line for line in listener.err)


async def test_an_old_timestamp_is_too_old(listeners: list[Listener]) -> None:
    listener = await listen(listeners)
    body = json.dumps(event(1)).encode()
    sent = int(time.time()) - 600  # a replay, ten minutes late
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(sent), "content-type": "application/json",
               "webhook-signature": sign([keyed(signing_key(SECRET))], "msg_1", sent, body)}
    async with aiohttp.ClientSession() as session, session.post(listener.url, data=body,
                                                                  headers=headers) as answer:
        assert answer.status == 200
    [headline] = await listener.wait_for_headlines(1)
    # 600 s, or 601 s when a second turned between the request and its arrival.
    assert re.search(r"\| NOT VERIFIED: signature matches but the timestamp is too old: "
                     r"sent 60[01] s before it arrived", headline), headline


async def test_answer_500_makes_the_daemon_retry(daemon: DaemonProcess, listeners: list[Listener]) -> None:
    listener = await listen(listeners, "--answer", "500")
    assert "  answering:  500" in listener.out
    await signed_daemon(daemon, listener.url)
    assert (await daemon.post(event(1)))[0] == 202
    first, second = (await listener.wait_for_headlines(2))[:2]
    ids = [re.search(r"\| id (\S+) \|", line) for line in (first, second)]
    assert ids[0] is not None and ids[1] is not None
    assert ids[0][1] == ids[1][1]  # one delivery, tried again
    assert listener.out.count("  answered 500") >= 1
    assert all(line.endswith("signature verified") for line in (first, second))


async def test_answer_429_with_retry_after(listeners: list[Listener]) -> None:
    listener = await listen(listeners, "--answer", "429", "--retry-after", "7", secret=None)
    async with aiohttp.ClientSession() as session, session.post(listener.url, data=b"{}") as answer:
        assert answer.status == 429
        assert answer.headers["Retry-After"] == "7"
    await wait_until(lambda: "  answered 429, Retry-After: 7" in listener.out, 5, "the answer line")


async def test_without_a_secret_signatures_are_not_checked(
    daemon: DaemonProcess, listeners: list[Listener]
) -> None:
    listener = await listen(listeners, secret=None)
    assert "  signatures: not checked (no --secret)" in listener.out
    await signed_daemon(daemon, listener.url)
    assert (await daemon.post(event(1)))[0] == 202
    [headline] = await listener.wait_for_headlines(1)
    assert headline.endswith("| signature not checked (no --secret)")


async def test_json_prints_one_object_per_delivery(listeners: list[Listener]) -> None:
    listener = await listen(listeners, "--json")
    assert listener.out == []  # the banner goes to stderr: stdout is NDJSON only
    credentials = {"Authorization": "Bearer tok-5f1e", "X-Api-Key": "key-9a7c", "webhook-id": "msg_1"}
    async with aiohttp.ClientSession() as session:
        for body in (b'{"event": "delivered"}', b"a=1&b=\x1b", b"\x1b[31mred"):
            async with session.post(listener.url, data=body, headers=credentials) as answer:
                assert answer.status == 200
    await wait_until(lambda: len(listener.out) == 3, 5, "three JSON lines")
    records = [json.loads(line) for line in listener.out]
    assert [record["number"] for record in records] == [1, 2, 3]
    # A credential the webhook sends is named, never printed.
    assert records[0]["headers"]["authorization"] == records[0]["headers"]["x-api-key"] == "[redacted]"
    assert records[0]["headers"]["webhook-id"] == "msg_1"
    assert not any("tok-5f1e" in line or "key-9a7c" in line for line in listener.out + listener.err)
    assert records[0]["body"] == {"event": "delivered"}
    assert records[0]["signature"]["verdict"] == "no_signature"
    assert records[2]["body"] == "\x1b[31mred"
    assert all("\x1b" not in line for line in listener.out)


async def test_what_a_sender_wrote_cannot_drive_the_terminal(listeners: list[Listener]) -> None:
    listener = await listen(listeners, secret=None)
    async with aiohttp.ClientSession() as session, session.post(
        listener.url + "%1b", data=b"\x1b[2J\x1b[31mred\rover"
    ) as answer:
        assert answer.status == 200
    await wait_until(lambda: any("red" in line for line in listener.out), 5, "the body")
    assert " POST /hook\\e | " in listener.headlines()[0]
    assert "  \\e[2J\\e[31mred" in listener.out
    assert all("\x1b" not in line and "\r" not in line for line in listener.out)


async def test_ctrl_c_exits_0_and_says_how_many_came(listeners: list[Listener]) -> None:
    listener = await Listener.start()
    async with aiohttp.ClientSession() as session, session.get(listener.url) as answer:
        assert answer.status == 200
    await listener.wait_for_headlines(1)
    assert await listener.stop() == 0
    assert listener.out[-1] == "mailhooks listen: stopped after 1 request(s)"


@pytest.mark.parametrize("secret", ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "plain-secret-words",
                                    "Bearer ${env:LISTEN_SECRET}"])
async def test_a_literal_secret_is_refused(secret: str) -> None:
    code, out, err = await run_cli("listen", "--port", "0", "--secret", secret)
    assert code == 2
    assert out == ""
    assert err.startswith("mailhooks listen: --secret takes a reference (${env:NAME}")
    assert len(err.splitlines()) == 1
    assert "MfKQ9r8" not in err and "plain-secret" not in err


async def test_a_secret_that_cannot_be_had(tmp_path: Path) -> None:
    code, _, err = await run_cli("listen", "--port", "0", "--secret", "${env:NOT_SET_ANYWHERE}")
    assert (code, err) == (2, "mailhooks listen: --secret ${env:NOT_SET_ANYWHERE}: "
                              "environment variable NOT_SET_ANYWHERE is not set\n")
    code, _, err = await run_cli("listen", "--port", "0", "--secret", "${env:SHORT}", env={"SHORT": "short"})
    assert code == 2
    assert "at least 16 bytes" in err
    assert "short\n" not in err


async def test_a_port_in_use(listeners: list[Listener]) -> None:
    listener = await listen(listeners, secret=None)
    code, _, err = await run_cli("listen", "--port", str(listener.port))
    assert code == 2
    assert err == f"mailhooks listen: cannot listen on 127.0.0.1:{listener.port}: Address already in use\n"
