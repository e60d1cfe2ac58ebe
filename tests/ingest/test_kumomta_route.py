"""`POST /sources/kumomta` on a real daemon, and `mailhooks ingest kumomta` against it:
arrays taken, unknown record types counted and logged once per kind, wrong media types
and garbage refused as 4xx (never a 5xx), the send role enough, from another user too."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import pytest

from tests.ingest.conftest import Ingester, delivered_ids
from tests.security.conftest import _nobody_ids
from tests.utils import REPO, DaemonProcess, Receiver, run_cli, wait_until

FIXTURES = Path(__file__).resolve().parent.parent / "sources" / "fixtures" / "kumomta"
BATCH = (FIXTURES / "batch.json").read_bytes()
UNKNOWN = (FIXTURES / "unknown-types.json").read_bytes()


def skipped_metric(metrics: str, kind: str) -> float:
    pattern = rf'mailhooks_source_records_skipped_total\{{[^}}]*kind="{re.escape(kind)}"[^}}]*\}} (\S+)'
    found = re.search(pattern, metrics)
    return float(found.group(1)) if found else 0.0


@pytest.fixture
async def running(daemon: DaemonProcess, receiver: Receiver) -> DaemonProcess:
    daemon.add_webhook("all", receiver.url)
    return await daemon.start()


async def test_an_array_of_records_is_taken_as_events(running: DaemonProcess, receiver: Receiver) -> None:
    status, answer = await running.request("POST", "/sources/kumomta", data=BATCH)
    assert status == 202, answer
    expected = json.loads((FIXTURES / "batch.expected.json").read_text())["events"]
    assert answer["accepted"] == len(expected) > 1
    await wait_until(lambda: len(receiver.events()) == len(expected), what="the batch's events")
    assert sorted(event["event_id"] for event in receiver.events()) == sorted(e["event_id"] for e in expected)
    again = await running.request("POST", "/sources/kumomta", data=BATCH)
    assert again == (202, {"accepted": len(expected), "duplicates": len(expected)})


async def test_unknown_record_types_are_counted_and_logged_once_per_kind(running: DaemonProcess) -> None:
    kinds = json.loads((FIXTURES / "unknown-types.expected.json").read_text())["skipped"]
    for _ in range(3):
        status, answer = await running.request("POST", "/sources/kumomta", data=UNKNOWN)
        assert (status, answer["accepted"], answer["skipped"]) == (202, 0, len(kinds))
    _, metrics = await running.request("GET", "/metrics")
    for kind in set(kinds):
        assert skipped_metric(metrics, kind) == 3 * kinds.count(kind), kind
    lines = [line for line in running.logs() if line.get("event") == "source_record_skipped"]
    assert sorted(line["kind"] for line in lines) == sorted(set(kinds))


async def test_invented_record_types_cannot_grow_the_metrics(running: DaemonProcess) -> None:
    # Each type name was a label of its own: any client with the send role could make
    # series without end. Only KumoMTA's own names are labels; the rest is type:other.
    names = [f"Made{first}{second}" for first in "ABCDEFGHIJKLMNOPQRST" for second in "abcdefghijklmno"]
    records = [{"type": name, "id": str(number)} for number, name in enumerate(names)]
    status, answer = await running.request("POST", "/sources/kumomta", data=json.dumps(records).encode())
    assert (status, answer["skipped"]) == (202, 300)
    _, metrics = await running.request("GET", "/metrics")
    assert skipped_metric(metrics, "type:other") == 300
    assert "MadeA" not in metrics
    lines = [line for line in running.logs() if line.get("event") == "source_record_skipped"]
    assert len(lines) == 1


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (BATCH, "text/plain", 415),
    (BATCH, "application/x-www-form-urlencoded", 415),
    (b"garbage", "application/json", 400),
    (b"", "application/json", 400),
    (b'"a string"', "application/json", 400),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
    (b'{"type": "Delivery", "timestamp": NaN}', "application/json", 400),
    (b'{"type": "Delivery", "id": "\xff\xfe"}', "application/json", 400),
    (b"[" + b"1" * 5000 + b"]", "application/json", 400),
])
async def test_what_is_no_log_record_is_refused_with_a_4xx(
    running: DaemonProcess, body: bytes, content_type: str, status: int
) -> None:
    got, answer = await running.request("POST", "/sources/kumomta", data=body, content_type=content_type)
    assert got == status, answer
    assert isinstance(answer, dict) and "\n" not in answer["error"]
    assert (await running.request("GET", "/healthz"))[0] == 200


async def test_one_record_a_line_too(running: DaemonProcess, receiver: Receiver) -> None:
    """A log shipper posts NDJSON: each line a record; a line that is no JSON is skipped."""
    lines = b"\n".join(json.dumps(record).encode() for record in json.loads(BATCH)) + b"\nnot json\n"
    status, answer = await running.request("POST", "/sources/kumomta", data=lines,
                                           content_type="application/x-ndjson")
    assert status == 202, answer
    expected = json.loads((FIXTURES / "batch.expected.json").read_text())["events"]
    assert answer["accepted"] == len(expected)
    await wait_until(lambda: len(receiver.events()) == len(expected), what="the lines' events")


async def test_more_records_than_a_request_may_carry_are_a_413_before_any_work(
    daemon: DaemonProcess,
) -> None:
    daemon.config["limits"] = {"max_batch_events": 10}
    await daemon.start()
    record = json.loads(BATCH)[0]
    status, answer = await daemon.request("POST", "/sources/kumomta", [record] * 11)
    assert status == 413 and "at most 10" in answer["error"], answer
    status, _ = await daemon.request("POST", "/sources/kumomta", data=b"{}", content_type="text/plain")
    assert status == 415
    _, metrics = await daemon.request("GET", "/metrics")
    assert 'mailhooks_events_rejected_total{reason="too_many"} 1.0' in metrics
    assert 'mailhooks_events_rejected_total{reason="media_type"} 1.0' in metrics


async def test_hostile_records_inside_an_array_are_skipped_not_a_crash(running: DaemonProcess) -> None:
    hostile = [{"type": "Delivery", "id": "x" * 100_000, "recipient": "a@b.c"},
               {"type": "Bounce", "id": "m1", "recipient": ["a@b.c"] * 5000, "response": {"code": "550"}},
               {"type": "Delivery", "id": "m2", "recipient": {"nested": [[[]]]}},
               {"type": "Feedback", "id": "m3", "feedback_report": "not an object"},
               {"type": "Delivery" * 10}, 7, None, "text"]
    status, answer = await running.request("POST", "/sources/kumomta", hostile)
    assert status == 202, answer
    assert answer["accepted"] == 1 + 5000 - 1  # m1's recipients: one event id, the rest known
    assert (await running.request("GET", "/healthz"))[0] == 200


async def test_ingest_kumomta_replays_a_log_of_one_record_a_line(
    running: DaemonProcess, receiver: Receiver, short_tmp: Path
) -> None:
    lines = b"\n".join(json.dumps(record).encode() for record in json.loads(BATCH))
    code, _, err = await run_cli("ingest", "kumomta", "--socket", str(running.socket),
                                 stdin=lines + b"\nnot json\n" + UNKNOWN.replace(b"\n", b"") + b"\n")
    assert code == 0, err
    assert "skipped a record (malformed)" in err
    expected = len(json.loads((FIXTURES / "batch.expected.json").read_text())["events"])
    await wait_until(lambda: len(receiver.events()) == expected, what="the replayed events")


# A Python another user may run: this one's may live below root's home. The system's, of
# the same version, runs mailhooks from this checkout with this venv's packages.
SYSTEM_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")


@pytest.mark.skipif(os.geteuid() != 0 or _nobody_ids() is None or not SYSTEM_PYTHON.exists(),
                    reason="acting as another user needs root, a nobody user and a system Python")
async def test_the_send_role_is_enough_for_another_user(running: DaemonProcess, receiver: Receiver) -> None:
    ids = _nobody_ids()
    assert ids is not None
    # The socket's group is the senders' (here nobody's), the directories on the way open.
    os.chown(running.socket, 0, ids[1])
    running.root.chmod(0o711)
    packages = [path for path in sys.path if path.endswith("site-packages") and ".venv" in path]
    env = {"HOME": "/", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": ":".join([str(REPO / "daemon"), *packages])}
    # A peer that is no admin: the daemon says so to `mailhooks status`…
    status = await asyncio.create_subprocess_exec(
        str(SYSTEM_PYTHON), "-m", "mailhooks", "status", "--socket", str(running.socket),
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **env}, user=ids[0], group=ids[1], extra_groups=[])
    _, refused = await asyncio.wait_for(status.communicate(), 60)
    assert status.returncode == 1 and b"the daemon refused" in refused, refused
    # …and may send all the same.
    ingester = await Ingester("kumomta", "--socket", str(running.socket), user=ids, python=str(SYSTEM_PYTHON),
                              env=env).start()
    try:
        await ingester.write(BATCH.replace(b"\n", b"") + b"\n")
        assert await ingester.close() == 0, ingester.stderr
    finally:
        await ingester.kill()
    await wait_until(lambda: len(delivered_ids(receiver)) > 1, what="nobody's events")
