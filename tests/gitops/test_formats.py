"""The four formats of `mailhooks diff` on one change that moves a secret to a new host:
the secret is flagged first in each; Markdown is read back by a Markdown parser, the
json checked against `schema/diff.schema.json`, the annotations parsed as GitHub would."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from markdown_it.token import Token

from tests.gitops.conftest import CRM, GitRepo, Run, diff_schema, markdown_parser
from tests.gitops.test_diff import NEW, grants_config

SECRET = "${credential:crm-signing-secret}"
ANNOTATION = re.compile(r"^::(?P<level>error|warning|notice) (?P<props>[^:]*)::(?P<message>.*)$")


@pytest.fixture
def moved(repo: GitRepo) -> GitRepo:
    """crm/opens now goes to collector.example.net with its signing secret; esp.yaml is new."""
    repo.write("crm/opens.yaml", CRM.replace("crm.example.com", "collector.example.net"))
    repo.write("esp.yaml", NEW)
    repo.commit("send opens to the collector")
    return repo


def diff(run: Run, repo: GitRepo, *args: str) -> Any:
    return run("--webhooks", str(repo.hooks), "HEAD~1", "HEAD", *args)


def parse_annotation(line: str) -> dict[str, str]:
    found = ANNOTATION.match(line)
    assert found, line
    props = dict(part.split("=", 1) for part in found["props"].split(","))
    return {"level": found["level"], **props, "message": found["message"]}


def tables(tokens: list[Token]) -> list[list[list[str]]]:
    """Each table as rows of cells, each cell its inline text (code spans included)."""
    found: list[list[list[str]]] = []
    row: list[str] = []
    for index, token in enumerate(tokens):
        if token.type == "table_open":
            found.append([])
        elif token.type == "tr_open":
            row = []
        elif token.type in ("th_open", "td_open"):
            inline = tokens[index + 1]
            row.append(inline.content if inline.type == "inline" else "")
        elif token.type == "tr_close":
            found[-1].append(row)
    return found


def cell_text(tokens: list[Token]) -> list[list[str]]:
    """Each cell's rendered text: code spans' literal content and plain text, no markup."""
    cells: list[list[str]] = []
    inside = False
    for token in tokens:
        if token.type in ("th_open", "td_open"):
            inside = True
            cells.append([])
        elif token.type in ("th_close", "td_close"):
            inside = False
        elif inside and token.type == "inline":
            cells[-1] += [child.content for child in token.children or []]
    return cells


def test_text_flags_the_secret_first_with_a_leading_bang(moved: GitRepo, run: Run) -> None:
    ran = diff(run, moved)
    assert ran.code == 0
    lines = ran.out.splitlines()
    assert lines[0].startswith("mailhooks diff: HEAD~1 (")
    assert lines[1] == ""
    assert lines[2] == (f"! SECRET {SECRET} newly sent to https://collector.example.net by crm/opens "
                        "(webhooks.d/crm/opens.yaml:6)")
    assert [line for line in lines if line.startswith("!")] == [lines[2]]


def test_markdown_has_the_warning_first_and_a_table(moved: GitRepo, run: Run) -> None:
    ran = diff(run, moved, "--format", "markdown")
    assert ran.code == 0
    tokens = markdown_parser().parse(ran.out)
    blocks = [token for token in tokens if token.level == 0 and token.nesting >= 0]
    assert [token.type for token in blocks[:3]] == ["heading_open", "blockquote_open", "table_open"]
    quote_end = next(i for i, token in enumerate(tokens) if token.type == "blockquote_close")
    warning = " ".join(token.content for token in tokens[:quote_end] if token.type == "inline")
    assert "[!WARNING]" in warning
    assert f"`{SECRET}` newly sent to `https://collector.example.net` by `crm/opens`" in warning
    [table] = tables(tokens)
    assert table[0] == ["Webhook", "Change", "Field", "Before", "After"]
    assert table[1:] == [
        ["`esp`", "added", "", "",
         "`Complaints to the ESP`: `complaint` → `https://esp.example.net/complaints`"],
        ["`crm/opens`", "changed", "`channel.url`", "`https://crm.example.com/hooks`",
         "`https://collector.example.net/hooks`"],
    ]
    html = markdown_parser().render(ran.out)
    assert "<li>➕ <code>https://collector.example.net</code> newly receives " \
           "<code>delivered, newsletter_opened</code> via <code>crm/opens</code> (changed)</li>" in html


def test_github_annotates_the_lines_and_appends_the_summary(
    moved: GitRepo, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("## an earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    ran = diff(run, moved, "--format", "github")
    assert ran.code == 0
    annotations = [parse_annotation(line) for line in ran.out.splitlines() if line.startswith("::")]
    assert annotations[0] == {
        "level": "warning", "file": "webhooks.d/crm/opens.yaml", "line": "6",
        "title": "mailhooks diff%3A secret newly sent",
        "message": f"SECRET {SECRET} newly sent to https://collector.example.net by crm/opens "
                   "(webhooks.d/crm/opens.yaml:6)",
    }
    notices = {(a["file"], a["line"], a["message"]) for a in annotations if a["level"] == "notice"}
    assert ("webhooks.d/esp.yaml", "1",
            "esp added: complaint → https://esp.example.net/complaints") in notices
    assert ("webhooks.d/crm/opens.yaml", "5", "crm/opens: channel.url: https://crm.example.com/hooks → "
            "https://collector.example.net/hooks") in notices
    written = summary.read_text()
    assert written.startswith("## an earlier step\n### mailhooks diff: ")
    assert written.endswith(run("--webhooks", str(moved.hooks), "HEAD~1", "HEAD", "--format", "markdown").out)


def test_github_makes_a_refused_secret_one_error_at_its_line(
    moved: GitRepo, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    ran = diff(run, moved, "--format", "github", "--config", str(grants_config(tmp_path)))
    assert ran.code == 1
    errors = [parse_annotation(line) for line in ran.out.splitlines() if line.startswith("::error")]
    assert len(errors) == 1
    assert (errors[0]["file"], errors[0]["line"]) == ("webhooks.d/crm/opens.yaml", "6")
    assert "refused by the config" in errors[0]["message"]
    assert "**refused by the config:**" in (tmp_path / "summary.md").read_text()


def test_github_without_a_summary_file_prints_the_summary(
    moved: GitRepo, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    ran = diff(run, moved, "--format", "github")
    assert ran.code == 0
    assert ran.err == "GITHUB_STEP_SUMMARY is not set: the summary follows\n"
    assert "### mailhooks diff: " in ran.out


def test_json_is_valid_for_the_schema_and_lists_the_secret(moved: GitRepo, run: Run) -> None:
    ran = diff(run, moved, "--format", "json")
    assert ran.code == 0
    found = ran.json()
    diff_schema().validate(found)
    assert found["secrets_newly_sent"] == [{
        "reference": SECRET, "destination": "https://collector.example.net", "webhook": "crm/opens",
        "file": "webhooks.d/crm/opens.yaml", "line": 6, "active": True,
    }]
    assert list(found) == ["base", "head", "secrets_newly_sent", "errors", "added", "removed", "renamed",
                           "changed", "status_changes", "effects"]


def test_every_format_is_valid_when_nothing_changed(repo: GitRepo, run: Run) -> None:
    for fmt in ("text", "markdown", "json"):
        ran = run("--webhooks", str(repo.hooks), "HEAD", "--format", fmt)
        assert ran.code == 0
    diff_schema().validate(run("--webhooks", str(repo.hooks), "HEAD", "--format", "json").json())
    assert "No webhook changed." in run("--webhooks", str(repo.hooks), "HEAD", "--format", "markdown").out
