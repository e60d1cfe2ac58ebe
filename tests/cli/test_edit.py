"""`mailhooks edit`: $EDITOR on a copy, validated before it replaces the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import WEB, Run, git

Editor = Callable[..., Path]
RENAME = ("name: CRM Opens", "name: CRM Opens v2")
BREAK = ("url: https://", "url: ftp://")
FIX = ("url: ftp://", "url: https://")


@pytest.mark.usefixtures("no_terminal")
def test_a_valid_edit_is_saved(webhooks: Path, run: Run, editor: Editor) -> None:
    editor(RENAME)
    ran = run("edit", "crm", str(webhooks))
    assert ran.code == 0, ran.err
    assert (webhooks / "crm.yaml").read_text() == WEB.replace(*RENAME)
    assert f"Saved {webhooks / 'crm.yaml'}" in ran.out
    assert "2 of 100 webhooks" in ran.out


@pytest.mark.usefixtures("no_terminal")
def test_visual_comes_before_editor(
    webhooks: Path, run: Run, editor: Editor, monkeypatch: pytest.MonkeyPatch
) -> None:
    editor(RENAME, variable="VISUAL")
    monkeypatch.setenv("EDITOR", "false")
    assert run("edit", "crm", str(webhooks)).code == 0
    assert "CRM Opens v2" in (webhooks / "crm.yaml").read_text()


@pytest.mark.usefixtures("no_terminal")
def test_no_change(webhooks: Path, run: Run, editor: Editor) -> None:
    editor()
    ran = run("edit", "crm", str(webhooks))
    assert ran.code == 0
    assert "No changes" in ran.out


@pytest.mark.usefixtures("no_terminal")
def test_invalid_without_a_terminal_keeps_the_file(
    webhooks: Path, run: Run, editor: Editor
) -> None:
    runs = editor(BREAK)
    ran = run("edit", "crm", str(webhooks))
    assert ran.code == 1
    assert f"{webhooks / 'crm.yaml'}:7:8: channel.url" in ran.err
    assert "Kept the last valid version" in ran.err
    assert (webhooks / "crm.yaml").read_text() == WEB
    assert runs.read_text() == "1"


def test_invalid_then_reopened_and_fixed(
    webhooks: Path, run: Run, editor: Editor, terminal: Callable[..., list[str]]
) -> None:
    runs = editor(BREAK, (*FIX, "CRM Opens", "CRM Opens fixed"))
    asked = terminal("r")
    ran = run("edit", "crm", str(webhooks))
    assert ran.code == 0, ran.err
    assert runs.read_text() == "2"
    assert len(asked) == 1 and "Reopen" in asked[0]
    assert (webhooks / "crm.yaml").read_text() == WEB.replace("CRM Opens", "CRM Opens fixed")


def test_invalid_then_kept(
    webhooks: Path, run: Run, editor: Editor, terminal: Callable[..., list[str]]
) -> None:
    editor(BREAK)
    terminal("what?", "k")  # an unclear answer is asked again
    ran = run("edit", "crm", str(webhooks))
    assert ran.code == 1
    assert (webhooks / "crm.yaml").read_text() == WEB


@pytest.mark.usefixtures("no_terminal")
def test_a_name_taken_by_another_file_is_an_error(
    webhooks: Path, run: Run, editor: Editor
) -> None:
    editor(("name: CRM Opens", "name: bounce alerts"))
    ran = run("edit", "crm", str(webhooks))
    assert ran.code == 1
    assert "is already used by" in ran.err
    assert (webhooks / "crm.yaml").read_text() == WEB


@pytest.mark.usefixtures("no_terminal")
def test_broken_yaml_shows_its_position(webhooks: Path, run: Run, editor: Editor) -> None:
    editor(("events: [", "events: [[ "))
    ran = run("edit", "crm", str(webhooks))
    assert ran.code == 1
    assert f"{webhooks / 'crm.yaml'}:" in ran.err


@pytest.mark.usefixtures("no_terminal")
def test_a_failing_editor_changes_nothing(webhooks: Path, run: Run, editor: Editor) -> None:
    editor(RENAME, exit_code=3)
    ran = run("edit", "crm", str(webhooks))
    assert ran.code == 1
    assert "the editor exited with 3" in ran.err
    assert (webhooks / "crm.yaml").read_text() == WEB


@pytest.mark.usefixtures("no_terminal")
def test_a_missing_editor_is_one_line(
    webhooks: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", "/nonexistent/editor --wait")
    ran = run("edit", "crm", str(webhooks))
    assert ran.code == 1
    assert ran.err.startswith("mailhooks edit: cannot run the editor '/nonexistent/editor'")


@pytest.mark.usefixtures("no_terminal")
def test_crlf_file_edited_keeps_its_other_bytes(webhooks: Path, run: Run, editor: Editor) -> None:
    path = webhooks / "crm.yaml"
    path.write_bytes(WEB.replace("\n", "\r\n").encode())
    editor(RENAME)
    assert run("edit", "crm", str(webhooks)).code == 0
    assert path.read_bytes() == WEB.replace(*RENAME).replace("\n", "\r\n").encode()


@pytest.mark.usefixtures("no_terminal")
def test_in_git_prints_the_commit(in_git: Path, run: Run, editor: Editor) -> None:
    editor(RENAME)
    ran = run("edit", "crm", "webhooks.d")
    assert "To commit: git commit -m 'Edit webhook crm' -- webhooks.d/crm.yaml" in ran.out
    assert git(in_git, "rev-list", "--count", "HEAD") == "1\n"
