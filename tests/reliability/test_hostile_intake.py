"""Hostile intake against one daemon: whatever arrives, the answer is 202 or a 4xx with a
JSON `error`, never a 5xx; the daemon never exits; a batch is taken whole or not at all;
and a well-behaved client beside the attacker keeps getting prompt 202s."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.reliability.conftest import deliveries, percentile
from tests.utils import DaemonProcess, Receiver, event

pytestmark = pytest.mark.asyncio(loop_scope="module")

EXAMPLES = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MAX_BODY = 10 * 1024 * 1024
FIELDS = ("event", "email", "message_id", "timestamp", "event_id", "campaign_id",
          "broadcast_name", "sending_domain", "sending_node", "bridge", "dedicated_ip",
          "link_url", "bounce_type", "complaint_type", "metadata")
PARTIAL_NODE = "partial-check"


@dataclass
class Hostile:
    """The one daemon, its receiver, and a steady client posting beside the attackers."""

    daemon: DaemonProcess
    receiver: Receiver
    steady: list[tuple[int, float]] = field(default_factory=list)  # (status, seconds)
    checked: int = 0

    async def post(self, data: bytes, content_type: str = "application/json") -> tuple[int, Any]:
        status, answer = await self.daemon.post(None, data=data, content_type=content_type,
                                                timeout=60)
        self.assert_answer(status, answer)
        return status, answer

    def assert_answer(self, status: int, answer: Any) -> None:
        assert status == 202 or 400 <= status < 500, (status, answer)
        if status != 202:
            assert isinstance(answer, dict) and isinstance(answer.get("error"), str), answer
        self.assert_alive()

    def assert_alive(self) -> None:
        process = self.daemon.process
        assert process is not None and process.returncode is None, self.daemon.logs_text()[-3000:]

    async def steady_client(self) -> None:
        number = 0
        while True:
            number += 1
            started = time.monotonic()
            try:
                status, _ = await self.daemon.post(event(number, event_id=f"steady-{number}"),
                                                   timeout=30)
            except (OSError, TimeoutError):
                status = 0
            self.steady.append((status, time.monotonic() - started))
            await asyncio.sleep(0.02)  # pace: about 50 requests a second at most

    def assert_steady(self) -> None:
        """Every steady post since the last check got a 202, promptly."""
        recent = self.steady[self.checked:]
        self.checked = len(self.steady)
        assert recent, "the steady client made no request"
        assert all(status == 202 for status, _ in recent), [s for s, _ in recent if s != 202]
        assert percentile([seconds for _, seconds in recent], 0.99) < 1.0, sorted(recent)[-3:]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def hostile() -> AsyncIterator[Hostile]:
    root = Path(tempfile.mkdtemp(prefix="mh", dir="/tmp"))
    receiver = await Receiver().start()
    daemon = DaemonProcess(root)
    daemon.add_webhook("all", receiver.url)
    daemon.add_webhook("partial", receiver.url.replace("/hook", "/partial"),
                       filters={"sending_node": [PARTIAL_NODE]})
    await daemon.start()
    state = Hostile(daemon, receiver)
    task = asyncio.create_task(state.steady_client())
    try:
        yield state
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        state.assert_alive()
        await daemon.stop()
        await receiver.stop()
        shutil.rmtree(root, ignore_errors=True)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
content_types = st.sampled_from(
    ["application/json", "application/x-ndjson", "text/plain", "application/octet-stream", ""]
)


@given(data=st.binary(max_size=4096), content_type=content_types)
@EXAMPLES
async def test_arbitrary_bytes(hostile: Hostile, data: bytes, content_type: str) -> None:
    await hostile.post(data, content_type)


@given(value=json_values, content_type=content_types)
@EXAMPLES
async def test_arbitrary_json(hostile: Hostile, value: Any, content_type: str) -> None:
    await hostile.post(json.dumps(value).encode(), content_type)


@given(values=st.lists(json_values, min_size=1, max_size=5))
@EXAMPLES
async def test_arbitrary_ndjson(hostile: Hostile, values: list[Any]) -> None:
    body = b"\n".join(json.dumps(value).encode() for value in values)
    await hostile.post(body, "application/x-ndjson")


def _wrong_values(name: str) -> st.SearchStrategy[Any]:
    others = (
        st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.booleans()
        | st.lists(st.integers(), max_size=3)
        | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)
    )
    if name == "metadata":
        return st.text(max_size=10) | st.lists(st.integers(), max_size=3) | st.dictionaries(
            st.text(max_size=5), st.lists(st.integers(), min_size=1, max_size=2), min_size=1, max_size=2)
    if name == "campaign_id":
        return st.floats(allow_nan=False) | st.booleans() | st.lists(st.integers(), max_size=3)
    return others


@st.composite
def wrong_type_events(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(FIELDS))
    item = {**event(0, event_id=f"w-{uuid.uuid4().hex}"), name: draw(_wrong_values(name))}
    return name, item


@given(case=wrong_type_events())
@EXAMPLES
async def test_wrong_types_for_each_field(hostile: Hostile, case: tuple[str, dict[str, Any]]) -> None:
    name, item = case
    status, answer = await hostile.post(json.dumps(item).encode())
    if status == 202:  # a few values are valid for a field (1 as a campaign id, …)
        return
    assert status == 400, answer
    assert any(detail["field"].split(".")[0] == name for detail in answer["details"]), answer


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@given(prefix=st.binary(max_size=50), bad=st.sampled_from(
    [b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xe2\x82"]))
@EXAMPLES
async def test_invalid_utf8(hostile: Hostile, prefix: bytes, bad: bytes) -> None:
    assume(not _decodes(prefix + bad))  # b"\xc2" + b"\x80" is U+0080, valid UTF-8
    valid = json.dumps(event(0, broadcast_name="PLACEHOLDER")).encode()
    status, answer = await hostile.post(valid.replace(b"PLACEHOLDER", prefix + bad))
    assert status == 400, answer


@given(items=st.lists(st.integers(0, 10**9), min_size=1, max_size=20, unique=True),
       position=st.integers(0, 20), bad=st.sampled_from([
           {"event": "exploded", "email": "x@example.com", "message_id": "m"},
           {"event": "delivered", "email": "not-an-address", "message_id": "m"},
           {"event": "delivered", "email": "x@example.com"},
           {"event": "delivered", "email": "x@example.com", "message_id": "m", "colour": "blue"},
           {"event": "delivered", "email": "x@example.com", "message_id": "m", "test": True},
           [], "event", None, 1,
       ]), ndjson=st.booleans())
@EXAMPLES
async def test_no_partial_batch_is_ever_spooled(
    hostile: Hostile, items: list[int], position: int, bad: Any, ndjson: bool
) -> None:
    tag = uuid.uuid4().hex
    batch: list[Any] = [event(n, event_id=f"p-{tag}-{n}", sending_node=PARTIAL_NODE) for n in items]
    batch.insert(min(position, len(batch)), bad)
    if ndjson:
        status, answer = await hostile.post(
            b"\n".join(json.dumps(item).encode() for item in batch), "application/x-ndjson")
    else:
        status, answer = await hostile.post(json.dumps(batch).encode())
    assert status == 400, answer
    spooled = {row["event_id"] for row in await deliveries(hostile.daemon, webhook="partial")}
    assert not {f"p-{tag}-{n}" for n in items} & spooled


async def test_deep_nesting(hostile: Hostile) -> None:
    depth = 10_000
    bodies = [
        b"[" * depth + b"]" * depth,
        b'{"a":' * depth + b"1" + b"}" * depth,
        json.dumps(event(1))[:-1].encode() + b', "metadata": {"k": ' + b"[" * depth + b"]" * depth + b"}}",
    ]
    for body in bodies:
        for content_type in ("application/json", "application/x-ndjson"):
            status, answer = await hostile.post(body, content_type)
            assert status == 400, answer
    hostile.assert_steady()


async def test_huge_strings(hostile: Hostile) -> None:
    huge = "x" * (5 * 1024 * 1024)
    cases = {
        "message_id": event(1, message_id=huge), "email": event(1, email=huge + "@example.com"),
        "broadcast_name": event(1, broadcast_name=huge), "event_id": event(1, event_id=huge),
        "unknown": event(1, **{huge: 1}), "link_url": event(1, link_url=huge),
        "event": event(1, event=huge),
    }
    for name, item in cases.items():
        status, answer = await hostile.post(json.dumps(item).encode())
        assert status in (400, 413), (name, answer)
    # Metadata is bounded like the other fields (keys 100, values 1000 characters): a 5 MB
    # key or value is refused, naming the field once.
    for metadata, named in (({"k": huge}, "metadata.k"), ({huge: 1}, f"metadata.{huge[:188]}...")):
        status, answer = await hostile.post(json.dumps(
            event(1, event_id=f"big-{uuid.uuid4().hex}", metadata=metadata)).encode())
        assert status == 400, answer
        assert [detail["field"] for detail in answer["details"]] == [named]
    hostile.assert_steady()


async def test_a_body_over_the_limit_is_413(hostile: Hostile) -> None:
    body = b" " * (MAX_BODY + 1)
    status, answer = await hostile.post(body)  # with Content-Length
    assert status == 413, answer

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1 << 20):
            yield body[start:start + (1 << 20)]

    status, answer = await hostile.daemon.request(  # chunked: no Content-Length to trust
        "POST", "/events", data=chunks(), timeout=60)  # type: ignore[arg-type]
    hostile.assert_answer(status, answer)
    assert status == 413, answer
    # Exactly at the limit is not over it.
    status, answer = await hostile.post(json.dumps(event(1)).encode().ljust(MAX_BODY))
    assert status == 202, answer
    hostile.assert_steady()


async def test_a_slow_drip_body_blocks_nobody(hostile: Hostile) -> None:
    body = json.dumps(event(1, event_id=f"drip-{uuid.uuid4().hex}")).encode()
    reader, writer = await asyncio.open_unix_connection(str(hostile.daemon.socket))
    try:
        writer.write(b"POST /events HTTP/1.1\r\nHost: mailhooks\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n")
        await writer.drain()
        hostile.checked = len(hostile.steady)  # only what follows counts below
        dripped = 0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and dripped < len(body) - 1:
            writer.write(body[dripped:dripped + 1])
            await writer.drain()
            dripped += 1
            await asyncio.sleep(0.05)  # the drip: one byte every 50 ms
        hostile.assert_steady()  # while the drip went on, the steady client got its 202s
        writer.write(body[dripped:])
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
        assert answer.startswith(b"HTTP/1.1 202"), answer
    finally:
        writer.close()


async def test_the_daemon_survived_and_the_steady_client_was_served(hostile: Hostile) -> None:
    hostile.assert_alive()
    status, _ = await hostile.daemon.request("GET", "/healthz")
    assert status == 200
    hostile.checked = 0
    hostile.assert_steady()
    failed = [line for line in hostile.daemon.logs_text().splitlines() if "request_failed" in line]
    assert not failed, failed[:3]


async def test_a_client_hanging_up_mid_body_is_not_an_internal_error(hostile: Hostile) -> None:
    body = json.dumps(event(1, event_id=f"hangup-{uuid.uuid4().hex}")).encode()
    for _ in range(3):
        _, writer = await asyncio.open_unix_connection(str(hostile.daemon.socket))
        writer.write(b"POST /events HTTP/1.1\r\nHost: mailhooks\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10])
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    # The next requests are answered, and the hang-ups were not logged as daemon bugs.
    status, _ = await hostile.daemon.request("GET", "/healthz")
    assert status == 200
    status, _ = await hostile.daemon.post(event(2, event_id=f"after-{uuid.uuid4().hex}"))
    assert status == 202
    failed = [line for line in hostile.daemon.logs_text().splitlines() if "request_failed" in line]
    assert not failed, failed[:1]
