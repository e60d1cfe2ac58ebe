"""`mailhooks enable` / `disable`: only the status changes, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailhooks.settings import Settings
from mailhooks.webhooks.edit import EditError, set_status
from mailhooks.webhooks.load import load_webhooks
from tests.cli.conftest import Run, git

ROUNDTRIP = sorted((Path(__file__).parent / "roundtrip").glob("*.yaml"))


def variants(raw: bytes) -> dict[str, bytes]:
    """The file as written, with CRLF line endings, and with a BOM."""
    return {"lf": raw, "crlf": raw.replace(b"\n", b"\r\n"), "bom": b"\xef\xbb\xbf" + raw}


def status_of(directory: Path, identifier: str) -> str:
    result = load_webhooks(directory, Settings())
    assert result.ok, result.problems
    return result.webhooks[identifier].webhook.status


def only_inserted(before: bytes, after: bytes, inserted: bytes) -> bool:
    """`after` is `before` with `inserted` put in at one place, and nothing else changed."""
    prefix = next((i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b),
                  len(before))
    return after[:prefix] + after[prefix + len(inserted):] == before and (
        after[prefix:prefix + len(inserted)] == inserted or after.endswith(inserted)
    )


@pytest.mark.parametrize("ending", ["lf", "crlf", "bom"])
@pytest.mark.parametrize("source", ROUNDTRIP, ids=lambda path: path.stem)
def test_round_trip_leaves_every_byte(
    tmp_path: Path, run: Run, source: Path, ending: str
) -> None:
    original = variants(source.read_bytes())[ending]
    path = tmp_path / "hook.yaml"
    path.write_bytes(original)
    first = status_of(tmp_path, "hook")
    there, back = ("disable", "enable") if first == "active" else ("enable", "disable")

    assert run(there, "hook", str(tmp_path)).code == 0
    flipped = path.read_bytes()
    assert status_of(tmp_path, "hook") != first
    # active ↔ inactive differ by "in": the flip inserts or removes exactly those bytes.
    assert only_inserted(original, flipped, b"in") or only_inserted(flipped, original, b"in")

    assert run(back, "hook", str(tmp_path)).code == 0
    assert path.read_bytes() == original


@pytest.mark.parametrize("command", ["enable", "disable"])
def test_already_there_is_a_no_op(webhooks: Path, run: Run, command: str) -> None:
    path = webhooks / "crm.yaml"
    if command == "disable":
        run("disable", "crm", str(webhooks))
    before = path.read_bytes()
    ran = run(command, "crm", str(webhooks))
    assert ran.code == 0
    assert "already" in ran.out
    assert path.read_bytes() == before


def test_enable_without_status_says_already_active(webhooks: Path, run: Run) -> None:
    path = webhooks / "alerts" / "bounces.yml"
    before = path.read_bytes()
    ran = run("enable", "alerts/bounces", str(webhooks))
    assert (ran.code, path.read_bytes()) == (0, before)
    assert "alerts/bounces is already active" in ran.out


@pytest.mark.parametrize(("before", "after"), [
    (b"name: A  # note\nevents: all\n", b"name: A  # note\nstatus: inactive\nevents: all\n"),
    (b"name: A\r\nevents: all\r\n", b"name: A\r\nstatus: inactive\r\nevents: all\r\n"),
    (b"events: all\nname: A", b"events: all\nname: A\nstatus: inactive\n"),
    (b"name: |\n  A\nevents: all\n", b"name: |\n  A\nstatus: inactive\nevents: all\n"),
    (b"{name: A, events: all}\n", b"{name: A, status: inactive, events: all}\n"),
    (b"  name: A\n  events: all\n", b"  name: A\n  status: inactive\n  events: all\n"),
    # No name (an invalid file, but still a YAML mapping): after the first key instead.
    (b"events: all\nx: 1\n", b"events: all\nstatus: inactive\nx: 1\n"),
])
def test_disable_adds_status_after_name(before: bytes, after: bytes) -> None:
    assert set_status(before, "inactive") == after


def test_disable_then_enable_without_status(webhooks: Path, run: Run) -> None:
    path = webhooks / "alerts" / "bounces.yml"
    original = path.read_bytes()
    assert run("disable", "alerts/bounces", str(webhooks)).code == 0
    assert path.read_bytes() == original.replace(
        b"name: Bounce Alerts\n", b"name: Bounce Alerts\nstatus: inactive\n"
    )
    assert status_of(webhooks, "alerts/bounces") == "inactive"
    assert run("enable", "alerts/bounces", str(webhooks)).code == 0
    assert status_of(webhooks, "alerts/bounces") == "active"


def test_status_spelled_wrong_is_fixed_in_place() -> None:
    fixed = set_status(b"name: A\nstatus: paused # x\n", "active")
    assert fixed == b"name: A\nstatus: active # x\n"


@pytest.mark.parametrize(("text", "message"), [
    (b"name: &n inactive\nstatus: *n\nevents: all\n", "alias"),
    (b'name: A\nstatus: "\\x61ctive"\nevents: all\n', "escapes"),
    (b"name: A\nstatus: [active]\nevents: all\n", "not a single value"),
])
def test_refuses_what_a_splice_cannot_change(text: bytes, message: str) -> None:
    with pytest.raises(EditError, match=message):
        set_status(text, "inactive" if b"x61" in text or b"[" in text else "active")


def test_keeps_permissions(webhooks: Path, run: Run) -> None:
    path = webhooks / "crm.yaml"
    path.chmod(0o640)
    run("disable", "crm", str(webhooks))
    assert path.stat().st_mode & 0o777 == 0o640


def test_broken_yaml_is_reported_with_its_position(webhooks: Path, run: Run) -> None:
    path = webhooks / "crm.yaml"
    path.write_text("name: [unclosed\nevents: all\n")
    ran = run("disable", "crm", str(webhooks))
    assert ran.code == 1
    assert f"{path}:" in ran.err
    assert ran.err.count("\n") == 1
    assert path.read_text() == "name: [unclosed\nevents: all\n"


@pytest.mark.parametrize("identifier", ["nope", "../webhooks.d/crm", "/etc/passwd", ".hidden"])
def test_unknown_or_bad_ids(webhooks: Path, run: Run, identifier: str) -> None:
    ran = run("disable", identifier, str(webhooks))
    assert ran.code == 1
    assert ran.err.startswith("mailhooks disable: ")
    assert "Traceback" not in ran.err


def test_id_may_be_given_with_its_extension(webhooks: Path, run: Run) -> None:
    assert run("disable", "alerts/bounces.yml", "--webhooks", str(webhooks)).code == 0
    assert status_of(webhooks, "alerts/bounces") == "inactive"


def test_validates_the_whole_directory(webhooks: Path, run: Run) -> None:
    (webhooks / "broken.yaml").write_text("name: Broken\n")
    ran = run("disable", "crm", str(webhooks))
    assert ran.code == 0
    assert f"{webhooks / 'broken.yaml'}:1:1:" in ran.err
    assert "fix them before committing" in ran.err
    assert status_of_file(webhooks / "crm.yaml") == "inactive"


def status_of_file(path: Path) -> str:
    return "inactive" if b"status: inactive" in path.read_bytes() else "active"


def test_in_git_prints_the_commit_and_does_not_commit(in_git: Path, run: Run) -> None:
    ran = run("disable", "crm", "webhooks.d")
    assert ran.code == 0
    hint = "git commit -m 'Disable webhook crm' -- webhooks.d/crm.yaml"
    assert f"To commit: {hint}" in ran.out
    assert git(in_git, "status", "--porcelain") == " M webhooks.d/crm.yaml\n"
    assert git(in_git, "rev-list", "--count", "HEAD") == "1\n"


def test_outside_git_no_commit_hint(webhooks: Path, run: Run) -> None:
    ran = run("disable", "crm", str(webhooks))
    assert "To commit" not in ran.out
    assert "2 of 100 webhooks" in ran.out
