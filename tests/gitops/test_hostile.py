"""What a pull request controls (names, values, file names) cannot forge a line, a table
cell, HTML or an annotation in any format; and a huge change gives bounded output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from markdown_it.token import Token

from tests.gitops.conftest import CRM, GitRepo, Run, diff_schema, markdown_parser
from tests.gitops.test_formats import cell_text, tables

NAMES = [
    "</table><script>alert(1)</script>",
    "| a | b |",
    "`tick`` s` \\| <!-- x",
    "**bold** [link](https://x.example) @someone #1",
    "admin\u202egnp.exe",
]
NODE = "smtp1\x1b[31m|</td>\u2028x"
FORGED = "::error file=x::forged"


@pytest.fixture
def hostile(repo: GitRepo) -> GitRepo:
    repo.write("crm/opens.yaml", CRM.replace("CRM Opens", NAMES[0]))
    for number, name in enumerate(NAMES[1:]):
        repo.write(f"h{number}.yaml", CRM.replace("CRM Opens", name.replace("\\", "\\\\"))
                   .replace("name: ", 'name: "').replace("\nevents", '"\nevents')
                   .replace("https://crm.example.com/hooks?token=not-shown", f"https://h{number}.example.com/")
                   + 'filters:\n  sending_node: ["smtp1\\e[31m|</td>\\Lx"]\n')
    repo.write("bad\x1b[2J<b>|.yaml", "name: x\n")
    repo.write(f"evil\n{FORGED}.yaml", "name: y\n")
    return repo


def all_tokens(tokens: list[Token]) -> list[Token]:
    found = []
    for token in tokens:
        found.append(token)
        found += all_tokens(token.children or [])
    return found


def test_text_escapes_control_characters(hostile: GitRepo, run: Run) -> None:
    ran = run("--webhooks", str(hostile.hooks), "HEAD")
    assert ran.code == 1  # the two files that cannot make ids
    assert "\x1b" not in ran.out and "\u2028" not in ran.out and "\u202e" not in ran.out
    assert not any(line.startswith("::") for line in ran.out.splitlines())
    assert "error: webhooks.d/bad\\e[2J<b>|.yaml:1:1: file name 'bad\\x1b[2J<b>|' cannot make" in ran.out
    assert "error: webhooks.d/evil\\n::error file=x::forged.yaml:1:1: " in ran.out
    assert " on node smtp1\\e[31m|</td>\\u2028x via h0 (added)\n" in ran.out
    assert "'admin\\u202egnp.exe'" in ran.out


def test_markdown_keeps_every_value_text_in_its_cell(hostile: GitRepo, run: Run) -> None:
    ran = run("--webhooks", str(hostile.hooks), "HEAD", "--format", "markdown")
    tokens = markdown_parser().parse(ran.out)
    every = all_tokens(tokens)
    assert [token.type for token in every if token.type.startswith("html")] == []
    assert "\x1b" not in ran.out and "\u202e" not in ran.out
    [table] = tables(tokens)
    assert {len(row) for row in table} == {5}
    codes = {token.content for token in every if token.type == "code_inline"}
    shown = [name.replace("\u202e", "\\u202e") for name in NAMES]
    assert set(shown[1:]) <= codes
    assert "smtp1\\e[31m|</td>\\u2028x" in " ".join(codes)
    # The changed webhook's name is in its row, as literal text.
    cells = cell_text(tokens)
    assert [NAMES[0]] in cells
    # Errors name hostile file names as text too.
    quote = " ".join(token.content for token in every if token.type == "text")
    assert "webhooks.d/bad\\e[2J<b>|.yaml:1:1" in " ".join(codes) + quote
    html = markdown_parser().render(ran.out)
    assert "<script>" not in html
    assert html.count("<table>") == html.count("</table>") == 1


def test_github_annotations_cannot_be_forged(
    hostile: GitRepo, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    ran = run("--webhooks", str(hostile.hooks), "HEAD", "--format", "github")
    lines = ran.out.splitlines()
    assert not any(line.startswith(FORGED) for line in lines)
    errors = [line for line in lines if line.startswith("::error")]
    assert len(errors) == 2
    assert "file=webhooks.d/evil\\n%3A%3Aerror file=x%3A%3Aforged.yaml," in errors[1]
    assert "\x1b" not in ran.out


def test_json_keeps_values_as_data(hostile: GitRepo, run: Run) -> None:
    ran = run("--webhooks", str(hostile.hooks), "HEAD", "--format", "json")
    found = ran.json()
    diff_schema().validate(found)
    assert sorted(a["name"] for a in found["added"]) == sorted(NAMES[1:])
    assert [c["new"] for c in found["changed"][0]["changes"]] == [NAMES[0]]


def test_a_huge_diff_gives_bounded_output(
    repo: GitRepo, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(300):
        repo.write(f"many/h{number:03}.yaml", f"name: Hook {number}\nevents: [delivered]\n"
                   f"channel: {{type: web, url: 'https://h{number}.example.com/{'x' * 500}'}}\n")
    config = tmp_path / "mailhooks.yaml"
    config.write_text("limits: {max_webhooks: 1000}\n")
    base = ("--config", str(config), "--webhooks", str(repo.hooks), "HEAD")

    text = run(*base)
    assert text.code == 0
    assert sum(line.startswith("  + added") for line in text.out.splitlines()) == 100
    assert "  and 200 more (the json format lists every one)\n" in text.out
    assert "  and 250 more (the json format lists every one)\n" in text.out  # effects

    markdown = run(*base, "--format", "markdown").out
    [table] = tables(markdown_parser().parse(markdown))
    assert len(table) == 101
    assert "and 200 more (the json format lists every one)" in markdown
    assert len(markdown) < 100_000

    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    github = run(*base, "--format", "github").out.splitlines()
    annotations = [line for line in github if line.startswith("::")]
    assert len(annotations) == 51
    assert annotations[-1].endswith("::and 550 more annotations: see the job summary")

    assert len(run(*base, "--format", "json").json()["added"]) == 300


def test_a_file_name_that_is_not_utf8_is_shown_escaped(repo: GitRepo, run: Run) -> None:
    repo.write(os.fsdecode(b"caf\xe9.yaml"), "name: z\n")
    repo.commit("a Latin-1 file name")
    for fmt in ("text", "markdown"):
        ran = run("--webhooks", str(repo.hooks), "HEAD~1", "HEAD", "--format", fmt)
        assert ran.code == 1
        assert "caf\\xe9" in ran.out
    found = run("--webhooks", str(repo.hooks), "HEAD~1", "HEAD", "--format", "json").json()
    assert [error["file"] for error in found["errors"]] == ["webhooks.d/caf\\xe9.yaml"]
