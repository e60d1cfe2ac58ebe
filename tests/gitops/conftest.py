"""Real git repositories for `mailhooks diff`: a webhooks directory, commits, renames."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from markdown_it import MarkdownIt

from mailhooks.cli import main
from tests.utils import REPO

CRM = """\
name: CRM Opens
events: [delivered, newsletter_opened]
channel:
  type: web
  url: https://crm.example.com/hooks?token=not-shown
  secret: "${credential:crm-signing-secret}"
"""

ALERTS = """\
name: Bounce Alerts
events: [bounced, complaint]
channel:
  type: pushover
  user_key: "${env:PUSHOVER_USER}"
  api_token: "${credential:pushover-token}"
"""

ANALYTICS = """\
name: Analytics
events: all
filters:
  sending_domain: ["*.example.org"]
channel:
  type: web
  url: https://analytics.example.com/in
"""


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class GitRepo:
    """A git repository with the webhooks in `webhooks.d/`, as a repository of webhooks
    has them (beside other files)."""

    root: Path

    @property
    def hooks(self) -> Path:
        return self.root / "webhooks.d"

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.root), "-c", "user.name=Reviewer", "-c", "user.email=r@example.com",
             *args], capture_output=True, text=True, check=True,
        )
        return done.stdout.strip()

    def write(self, relative: str, text: str | bytes) -> Path:
        path = self.hooks / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    def remove(self, relative: str) -> None:
        (self.hooks / relative).unlink()

    def move(self, old: str, new: str) -> None:
        (self.hooks / new).parent.mkdir(parents=True, exist_ok=True)
        self.git("mv", f"webhooks.d/{old}", f"webhooks.d/{new}")

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    """A repository whose first commit holds three webhooks: CRM opens (a signing secret
    to crm.example.com), bounce alerts (Pushover) and analytics (all events, filtered)."""
    made = GitRepo(tmp_path / "repo")
    made.root.mkdir()
    made.git("init", "-q", "-b", "main")
    (made.root / "README.md").write_text("webhooks\n")
    made.write("crm/opens.yaml", CRM)
    made.write("alerts.yaml", ALERTS)
    made.write("analytics.yaml", ANALYTICS)
    made.commit("three webhooks")
    return made


Run = Callable[..., Ran]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """`mailhooks diff ARGS…` in-process: exit code, stdout, stderr."""

    def running(*args: str) -> Ran:
        code = main(["diff", *args])
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return running


def diff_schema() -> Draft202012Validator:
    schema = json.loads((REPO / "schema" / "diff.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def markdown_parser() -> MarkdownIt:
    """CommonMark with GFM tables, and raw HTML on: what the report escapes must stay
    text even where HTML would be taken as HTML."""
    return MarkdownIt("commonmark", {"html": True}).enable("table")


METRICS = """\
# HELP mailhooks_events_received_total Events accepted and spooled, by event type.
# TYPE mailhooks_events_received_total counter
mailhooks_events_received_total{event="delivered"} 7200.0
mailhooks_events_received_total{event="bounced"} 360.0
mailhooks_events_received_total{event="complaint"} 36.0
# HELP mailhooks_start_time_seconds When the daemon started (unix time).
# TYPE mailhooks_start_time_seconds gauge
mailhooks_start_time_seconds 1.7e+09
"""
STARTED = 1_700_000_000


@pytest.fixture
def metrics(tmp_path: Path) -> Path:
    """Saved an hour after the daemon started."""
    path = tmp_path / "metrics.txt"
    path.write_text(METRICS)
    os.utime(path, (STARTED + 3600, STARTED + 3600))
    return path
