"""Fixtures for the commands that change webhook files: a directory, git, a terminal."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailhooks.cli import main

WEB = """\
# yaml-language-server: $schema=../schema/webhook.schema.json
name: CRM Opens   # shown in mailhooks list
status: active
events: [delivered, newsletter_opened]
channel:
  type: web
  url: https://crm.example.com/hooks
"""

PUSHOVER = """\
name: Bounce Alerts
events: [bounced]
channel:
  type: pushover
  user_key: "${env:PUSHOVER_USER}"
  api_token: "${credential:pushover-token}"
"""


@dataclass
class Ran:
    code: int
    out: str
    err: str


Run = Callable[..., Ran]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """`mailhooks ARGS…` in-process: its exit code, stdout and stderr."""
    def running(*args: str) -> Ran:
        code = main(list(args))
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)
    return running


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository-like tree: `schema/` beside `webhooks.d/` holding two webhooks."""
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "webhook.schema.json").write_text("{}")
    directory = tmp_path / "webhooks.d"
    (directory / "alerts").mkdir(parents=True)
    (directory / "crm.yaml").write_text(WEB)
    (directory / "alerts" / "bounces.yml").write_text(PUSHOVER)
    return tmp_path


@pytest.fixture
def webhooks(repo: Path) -> Path:
    return repo / "webhooks.d"


def git(where: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(where), "-c", "user.name=Test", "-c", "user.email=test@example.com",
         "-c", "commit.gpgsign=false", *args],
        capture_output=True, text=True, check=True,
    ).stdout


@pytest.fixture
def in_git(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`repo` as a git work tree with everything committed, and the shell's cwd in it."""
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "initial")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.com")
    return repo


class _Stdin:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def readline(self) -> str:
        return ""


@pytest.fixture
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin(tty=False))


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[str]]:
    """A terminal that answers the prompts in order; returns the questions asked."""
    asked: list[str] = []

    def answering(*answers: str) -> list[str]:
        monkeypatch.setattr(sys, "stdin", _Stdin(tty=True))
        pending = iter(answers)

        def fake_input(question: str = "") -> str:
            asked.append(question)
            try:
                return next(pending)
            except StopIteration:
                raise EOFError from None

        monkeypatch.setattr("builtins.input", fake_input)
        return asked
    return answering


@pytest.fixture
def editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Set $EDITOR to a script applying `edits` to the file, one per run (the last one
    repeats), each a tuple of (old, new, old, new…) replacements; returns the file counting
    the runs."""
    def setting(*edits: tuple[str, str], exit_code: int = 0, variable: str = "EDITOR") -> Path:
        runs = tmp_path / "editor-runs"
        runs.write_text("0")
        script = tmp_path / "editor.py"
        script.write_text(
            "import pathlib, sys\n"
            f"edits = {list(edits)!r}\n"
            f"runs = pathlib.Path({str(runs)!r})\n"
            "count = int(runs.read_text())\n"
            "runs.write_text(str(count + 1))\n"
            "path = pathlib.Path(sys.argv[1])\n"
            "if edits:\n"
            "    pairs = edits[min(count, len(edits) - 1)]\n"
            "    for old, new in zip(pairs[::2], pairs[1::2], strict=True):\n"
            "        path.write_bytes(path.read_bytes().replace(old.encode(), new.encode()))\n"
            f"sys.exit({exit_code})\n"
        )
        monkeypatch.delenv("VISUAL", raising=False)
        monkeypatch.setenv(variable, f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}")
        return runs
    return setting


@pytest.fixture(autouse=True)
def _quiet_git(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The developer's git config (hooks, templates) must not change what tests see.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    yield
