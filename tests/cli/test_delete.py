"""`mailhooks delete`: confirm (or --yes), then remove the file, with git rm in git."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import Run, git


@pytest.mark.usefixtures("no_terminal")
def test_yes_deletes(webhooks: Path, run: Run) -> None:
    ran = run("delete", "crm", str(webhooks), "--yes")
    assert ran.code == 0
    assert not (webhooks / "crm.yaml").exists()
    assert "1 of 100 webhooks" in ran.out
    assert "To commit" not in ran.out


@pytest.mark.usefixtures("no_terminal")
def test_no_terminal_and_no_yes_refuses(webhooks: Path, run: Run) -> None:
    ran = run("delete", "crm", str(webhooks))
    assert ran.code == 1
    assert "--yes" in ran.err
    assert (webhooks / "crm.yaml").exists()


@pytest.mark.parametrize(("answer", "deleted"), [("y", True), ("yes", True), ("", False),
                                                 ("n", False)])
def test_asks_on_a_terminal(
    webhooks: Path, run: Run, terminal: Callable[..., list[str]], answer: str, deleted: bool
) -> None:
    asked = terminal(answer)
    ran = run("delete", "alerts/bounces", str(webhooks))
    assert asked == [f"Delete webhook alerts/bounces ({webhooks / 'alerts/bounces.yml'})? [y/N] "]
    assert ran.code == (0 if deleted else 1)
    assert (webhooks / "alerts" / "bounces.yml").exists() is not deleted


@pytest.mark.usefixtures("no_terminal")
def test_in_git_uses_git_rm_and_prints_the_commit(in_git: Path, run: Run) -> None:
    (in_git / "webhooks.d" / "crm.yaml").write_text("name: Changed\n")  # local changes too
    (in_git / "webhooks.d" / "other.yaml").write_text("not committed\n")
    ran = run("delete", "crm", "webhooks.d", "--yes")
    assert ran.code == 0, ran.err
    assert "(git rm)" in ran.out
    hint = ran.out.split("To commit: ", 1)[1].strip()
    assert hint == "git commit -m 'Delete webhook crm' -- webhooks.d/crm.yaml"
    assert "D  webhooks.d/crm.yaml" in git(in_git, "status", "--porcelain")
    assert git(in_git, "rev-list", "--count", "HEAD") == "1\n"
    # The printed command commits that deletion and nothing else.
    subprocess.run(shlex.split(hint), cwd=in_git, check=True, capture_output=True)
    assert git(in_git, "show", "--name-status", "--format=", "HEAD") == "D\twebhooks.d/crm.yaml\n"
    assert git(in_git, "status", "--porcelain") == "?? webhooks.d/other.yaml\n"


@pytest.mark.usefixtures("no_terminal")
def test_git_rm_of_the_last_file_of_a_folder(in_git: Path, run: Run) -> None:
    ran = run("delete", "alerts/bounces", "webhooks.d", "--yes")
    assert ran.code == 0, ran.err
    assert "git commit -m 'Delete webhook alerts/bounces' -- webhooks.d/alerts/bounces.yml" in (
        ran.out
    )


@pytest.mark.usefixtures("no_terminal")
def test_untracked_file_in_git_is_just_removed(in_git: Path, run: Run) -> None:
    (in_git / "webhooks.d" / "new.yaml").write_text("name: New\n")
    ran = run("delete", "new", "webhooks.d", "--yes")
    assert ran.code == 0
    assert not (in_git / "webhooks.d" / "new.yaml").exists()
    assert "To commit" not in ran.out


@pytest.mark.usefixtures("no_terminal")
def test_unknown_id(webhooks: Path, run: Run) -> None:
    ran = run("delete", "nope", str(webhooks), "--yes")
    assert ran.code == 1
    assert ran.err == f"mailhooks delete: no webhook 'nope' in {webhooks}\n"
