"""`mailhooks explain --from SOURCE FILE`: a mail server's real records, read by that
source, each event explained; what the source skipped said with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailhooks.cli import main
from tests.conftest import WriteFile, webhook_yaml

FIXTURES = Path(__file__).resolve().parent.parent / "sources" / "fixtures"


@pytest.fixture
def hooks(write: WriteFile, hooks_dir: Path) -> Path:
    write("bounces.yaml", webhook_yaml("Bounces", events="[bounced]"))
    write("node.yaml", webhook_yaml("Node", events="all", extra="filters:\n  sending_node: [mx1]\n"))
    return hooks_dir


def explain(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["explain", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_postfix_log_lines_are_explained_event_by_event(
    capsys: pytest.CaptureFixture[str], hooks: Path
) -> None:
    log = FIXTURES / "postfix" / "positive" / "syslog-traditional.log"
    code, out, err = explain(capsys, "--from", "postfix", str(log), str(hooks))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    first = lines.index(next(line for line in lines if line.startswith("event 2: bounced nobody@gmail.com")))
    assert lines[first + 1:first + 4] == [
        "  bounces (Bounces): matched", "  node (Node): matched", "  2 of 2 webhooks matched"]
    assert any(line.startswith("skipped (null-sender): ") for line in lines)
    assert lines[-1] == "4 event(s) from the postfix records, 1 record(s) skipped"


def test_a_record_that_did_not_fire_says_why(capsys: pytest.CaptureFixture[str], hooks: Path) -> None:
    code, out, _ = explain(capsys, "--from", "pmta", str(FIXTURES / "pmta" / "delivered.csv"), str(hooks))
    assert code == 0
    assert "  node (Node): not matched: filter sending_node: the event has no sending_node" in out
    assert "  bounces (Bounces): not matched: event 'delivered' not selected (selects bounced)" in out


def test_json_lists_events_and_skipped_records(capsys: pytest.CaptureFixture[str], hooks: Path) -> None:
    unknown = FIXTURES / "kumomta" / "unknown-types.json"
    code, out, _ = explain(capsys, "--json", "--from", "kumomta", str(unknown), str(hooks))
    document = json.loads(out)
    assert (code, document["events"]) == (0, [])
    assert {item["kind"] for item in document["skipped"]} >= {"type:Delay"}
    bounce = FIXTURES / "dsn" / "positive" / "postfix-3.7-user-unknown.eml"
    code, out, _ = explain(capsys, "--json", "--from", "dsn", str(bounce), str(hooks))
    [event] = json.loads(out)["events"]
    assert event["event"]["dsn_status"] == "5.1.1"
    assert {w["id"]: w["matched"] for w in event["webhooks"]} == {"bounces": True, "node": False}


def test_kumomta_log_of_one_record_a_line(
    capsys: pytest.CaptureFixture[str], hooks: Path, tmp_path: Path
) -> None:
    records = json.loads((FIXTURES / "kumomta" / "batch.json").read_text())
    log = tmp_path / "kumo.log"
    log.write_text("\n".join(json.dumps(record) for record in records) + "\nnot json\n")
    code, out, _ = explain(capsys, "--from", "kumomta", str(log), str(hooks))
    assert code == 0
    assert "skipped (malformed): line " in out


def test_an_unreadable_file_is_one_line(
    capsys: pytest.CaptureFixture[str], hooks: Path, tmp_path: Path
) -> None:
    code, out, err = explain(capsys, "--from", "dsn", str(tmp_path / "none.eml"), str(hooks))
    assert (code, out) == (1, "")
    assert err == f"mailhooks explain: cannot read {tmp_path / 'none.eml'}: No such file or directory\n"
