"""Every field is bounded (SPEC §4): an event outside a bound is a 400 naming the field,
never a 5xx, and nothing of its batch is taken.

Before: a timestamp like 9999-12-31T23:59:59-01:00 was a 500 (OverflowError) for the
whole batch; an event_id with CR/LF was accepted, then failed every attempt with an
internal error and reached `mailhooks deliveries` raw; a 60 KB campaign_id was accepted;
NaN in metadata silently became null; GET /deliveries?limit=-1 returned every row.
"""

from __future__ import annotations

import json
import string
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ingest.conftest import StandIn
from tests.utils import DaemonProcess, event, run_cli

pytestmark = pytest.mark.asyncio(loop_scope="module")

FINDINGS = [
    ("timestamp", b'"9999-12-31T23:59:59-01:00"'),
    ("timestamp", b'"0001-01-01T00:30:00+01:00"'),
    ("timestamp", b'"1969-12-31T23:59:59Z"'),
    ("event_id", json.dumps("abc\r\nInjected: 1").encode()),
    ("event_id", json.dumps("x" * 201).encode()),
    ("campaign_id", json.dumps("c" * 60_000).encode()),
    ("campaign_id", b"1" + b"0" * 30),
    ("metadata", b'{"score": NaN}'),
    ("metadata", b'{"score": Infinity}'),
    ("message_id", json.dumps("m\x1b[31mred").encode()),
    ("smtp_code", b"99"),
    ("smtp_code", b"600"),
    ("dsn_status", b'"5.1"'),
    ("diagnostic", json.dumps("d" * 2001).encode()),
]
# Strings and their bounds, from the model SPEC §4's bounds are written in.
STRING_BOUNDS = {
    "message_id": 998, "event_id": 200, "broadcast_name": 1000, "sending_domain": 253,
    "sending_node": 200, "bridge": 200, "dedicated_ip": 45, "link_url": 8192,
    "bounce_type": 100, "complaint_type": 100, "diagnostic": 2000,
}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def one_daemon(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DaemonProcess]:
    process = DaemonProcess(Path(tmp_path_factory.mktemp("bounds")))
    # A webhook taking every event (to a port nobody listens on): a spooled event shows
    # in /deliveries, so half a batch taken would be seen.
    process.add_webhook("all", "http://127.0.0.1:9/hook", channel={"retry_schedule": [3600]})
    await process.start()
    yield process
    await process.stop()


def _body(field: str, raw_value: bytes, number: int) -> bytes:
    good = json.dumps(event(number, event_id=f"good-{number}")).encode()
    bad = json.dumps(event(number + 1, event_id=f"bad-{number}")).encode()
    bad = bad[:-1] + b', "' + field.encode() + b'": ' + raw_value + b"}"
    return b"[" + good + b"," + bad + b"]"


@pytest.mark.parametrize(("field", "raw_value"), FINDINGS)
async def test_each_finding_is_a_400_naming_the_field(
    one_daemon: DaemonProcess, field: str, raw_value: bytes,
) -> None:
    number = FINDINGS.index((field, raw_value)) * 10
    status, answer = await one_daemon.post(None, data=_body(field, raw_value, number))
    assert status == 400, answer
    assert [detail["field"].split(".")[0] for detail in answer["details"]] == [field]
    assert [detail["index"] for detail in answer["details"]] == [1]
    _, listed = await one_daemon.request("GET", "/deliveries?limit=10000")
    assert all(row["event_id"] != f"good-{number}" for row in listed["deliveries"]), "half a batch"


@pytest.mark.parametrize("path", ["/deliveries/replay", "/webhooks/all/test"])
@pytest.mark.parametrize("body", [b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000, b"{"])
async def test_an_admin_body_that_is_no_json_is_a_400(one_daemon: DaemonProcess, path: str,
                                                      body: bytes) -> None:
    status, answer = await one_daemon.request("POST", path, data=body)
    assert status == 400 and "body must be JSON" in answer["error"], (status, answer)


async def test_a_listing_limit_out_of_range_is_a_400(one_daemon: DaemonProcess) -> None:
    for limit in ("-1", "0", "10001", "lots"):
        status, answer = await one_daemon.request("GET", f"/deliveries?limit={limit}")
        assert status == 400 and "limit" in answer["error"], limit


TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


@given(field=st.sampled_from(sorted(STRING_BOUNDS)), delta=st.integers(-2, 2), fill=TEXT,
       control=st.booleans())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
async def test_string_bounds(one_daemon: DaemonProcess, field: str, delta: int, fill: str,
                             control: bool) -> None:
    bound = STRING_BOUNDS[field]
    base = (fill or "x") + ("\x07" if control else "")
    value = (base * (bound // max(len(base), 1) + 2))[: max(bound + delta, 1)]
    item: dict[str, Any] = event(0, event_id=None)
    del item["event_id"]
    item[field] = value
    status, answer = await one_daemon.post(None, data=json.dumps(item).encode())
    assert status in (202, 400), (status, answer)
    if status == 400:
        assert {detail["field"].split(".")[0] for detail in answer["details"]} == {field}, answer
    elif field != "broadcast_name" and field != "diagnostic":
        assert len(value) <= bound and all(ch not in value for ch in "\x07"), value


async def test_cli_output_cannot_carry_escape_sequences(one_daemon: DaemonProcess) -> None:
    hostile = {**event(1), "\x1b]0;pwned\x07\x1b[2J": "x"}
    code, _, err = await run_cli("send", "-", "--socket", str(one_daemon.socket),
                                 stdin=json.dumps(hostile).encode())
    assert code == 1
    assert "\x1b" not in err and "\\e]0;pwned\\x07" in err
    assert set(err) <= set(string.printable) | {"…"}


async def test_deliveries_output_cannot_carry_escape_sequences(short_tmp: Path) -> None:
    # What the daemon lists came from events, files and receivers: printed for a person,
    # every control character is written as an escape.
    hostile = "\x1b]0;pwned\x07\x1b[2J"
    row = {"id": 1, "state": "failed", "webhook_id": f"crm{hostile}", "event": "bounced",
           "event_id": f"e{hostile}", "attempts": 3, "last_status": 500, "updated_at": 0.0,
           "last_error": f"HTTP 500: {hostile}\r\nforged line"}
    stand_in = await StandIn(short_tmp / "d.sock",
                             answer=lambda _body: web.json_response({"deliveries": [row]})).start()
    try:
        for json_output in (False, True):
            code, out, _ = await run_cli("deliveries", "--socket", str(stand_in.socket),
                                         *(["--json"] if json_output else []))
            assert code == 0
            assert "\x1b" not in out and "\x07" not in out and "\r" not in out, out
            assert json_output or ("\\e]0;pwned\\x07\\e[2J" in out and out.count("\n") == 2)
    finally:
        await stand_in.stop()
