"""`mailhooks validate`, `list` and `explain`, called as `main([...])` and as real processes."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailhooks.cli import main
from tests.conftest import WriteFile, webhook_yaml
from tests.webhooks.conftest import REPO, VENV_BIN

TEXT_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")
GITHUB_LINE = re.compile(
    r"^::error file=(?P<file>[^,]+),line=(?P<line>\d+),col=(?P<col>\d+)[^:]*::(?P<message>.+)$"
)
EVENT = {"event": "delivered", "email": "someone@example.com", "message_id": "m-1",
         "sending_domain": "mail.example.org"}


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def process_env() -> dict[str, str]:
    """The environment for a real process: the venv's python first on PATH."""
    return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture
def broken(write: WriteFile, hooks_dir: Path) -> Path:
    write("good.yaml", webhook_yaml("Good"))
    write("bad/events.yaml", webhook_yaml("Bad events", events="[opened]"))
    write("http.yaml", webhook_yaml("Plain", url="http://a.example.com/"))
    return hooks_dir


# --- validate --------------------------------------------------------------------------------


def test_validate_a_valid_directory_exits_0(
    capsys: pytest.CaptureFixture[str], write: WriteFile, hooks_dir: Path
) -> None:
    write("a.yaml")
    write("crm/b.yml")
    code, out, err = run_cli(capsys, "validate", str(hooks_dir))
    assert (code, out, err) == (0, "2 webhook(s) valid\n", "")


def test_validate_an_invalid_directory_exits_1_with_path_line_col_lines(
    capsys: pytest.CaptureFixture[str], broken: Path
) -> None:
    code, out, err = run_cli(capsys, "validate", str(broken))
    assert code == 1
    assert err == ""
    *lines, summary = out.splitlines()
    assert summary == "2 error(s) in 2 file(s); 1 webhook(s) valid"
    parsed = [TEXT_LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert sorted((m["file"], m["line"], m["col"]) for m in parsed if m) == [
        (str(broken / "bad" / "events.yaml"), "2", "10"),
        (str(broken / "http.yaml"), "5", "8"),
    ]


def test_validate_uses_the_webhooks_flag_and_the_config(
    capsys: pytest.CaptureFixture[str], broken: Path, tmp_path: Path
) -> None:
    config = tmp_path / "mailhooks.yaml"
    config.write_text(f"webhooks_dir: {broken.name}\nallow_http: true\n")
    code, out, _ = run_cli(capsys, "validate", "--config", str(config))
    assert code == 1
    assert "plain http" not in out
    assert "events.yaml:2:10" in out
    code, out, _ = run_cli(capsys, "validate", "--webhooks", str(broken))
    assert code == 1
    assert "plain http" in out


def test_validate_reports_a_bad_config_with_its_position(
    capsys: pytest.CaptureFixture[str], hooks_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "mailhooks.yaml"
    config.write_text("allow_http: maybe\n")
    code, out, _ = run_cli(capsys, "validate", "--config", str(config), str(hooks_dir))
    assert code == 1
    assert out.splitlines()[0] == f'{config}:1:13: allow_http: "maybe" is not of type boolean'


@pytest.mark.parametrize("argv", [
    ["validate", "--format", "xml"],
    ["validate", "--bogus"],
    ["validate", "a", "b"],
    ["no-such-command"],
    [],
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--help)" in err, err  # one line on stderr


def test_validate_github_format(capsys: pytest.CaptureFixture[str], broken: Path) -> None:
    code, out, _ = run_cli(capsys, "validate", "--format", "github", str(broken))
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 2
    matched = [GITHUB_LINE.match(line) for line in lines]
    assert all(matched), lines
    by_line = {(m["line"], m["col"]): m for m in matched if m}
    http = by_line[("5", "8")]
    assert http["file"] == str(broken / "http.yaml").replace(":", "%3A")
    assert http["message"].startswith("channel.url: plain http is not allowed")


def test_validate_github_format_escapes_newlines_and_percent(
    capsys: pytest.CaptureFixture[str], write: WriteFile, hooks_dir: Path
) -> None:
    write("pct.yaml", webhook_yaml("Pct", events="[100%]"))
    _, out, _ = run_cli(capsys, "validate", "--format", "github", str(hooks_dir))
    assert "100%25" in out
    assert all(line.startswith("::error ") for line in out.splitlines())


def test_validate_json_format(capsys: pytest.CaptureFixture[str], broken: Path) -> None:
    code, out, _ = run_cli(capsys, "validate", "--format", "json", str(broken))
    assert code == 1
    document = json.loads(out)
    assert document["valid"] is False
    assert document["webhooks"] == ["good"]
    assert sorted((e["file"], e["line"], e["column"]) for e in document["errors"]) == [
        (str(broken / "bad" / "events.yaml"), 2, 10),
        (str(broken / "http.yaml"), 5, 8),
    ]
    assert all(set(e) == {"file", "line", "column", "message"} for e in document["errors"])


def test_validate_json_format_valid(
    capsys: pytest.CaptureFixture[str], write: WriteFile, hooks_dir: Path
) -> None:
    write("a.yaml")
    code, out, _ = run_cli(capsys, "validate", "--format", "json", str(hooks_dir))
    assert code == 0
    assert json.loads(out) == {"valid": True, "webhooks": ["a"], "errors": []}


def test_scripts_validate_on_the_examples_exits_0() -> None:
    done = subprocess.run(
        [str(REPO / "scripts" / "validate"), "webhooks.d"],
        cwd=REPO, env=process_env(), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.endswith("webhook(s) valid\n")


def test_installed_command_as_a_process(broken: Path) -> None:
    done = subprocess.run(
        [str(VENV_BIN / "mailhooks"), "validate", str(broken)],
        env=process_env(), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1
    assert f"{broken / 'http.yaml'}:5:8: channel.url: plain http" in done.stdout
    assert "Traceback" not in done.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "mailhooks", "validate", "--format", "yaml"],
        env=process_env(), capture_output=True, text=True, timeout=120,
    )
    assert usage.returncode == 2


# --- list ------------------------------------------------------------------------------------


def _git(directory: Path, *args: str, date: str = "2024-01-15T10:30:00+00:00") -> None:
    env = {**process_env(), "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date,
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main",
         "-c", "commit.gpgsign=false", *args],
        cwd=directory, env=env, check=True, capture_output=True, timeout=60,
    )


def test_list_table(capsys: pytest.CaptureFixture[str], write: WriteFile, hooks_dir: Path) -> None:
    write("crm/opens.yaml", webhook_yaml("CRM Opens", events="[delivered, newsletter_opened]"))
    write("alerts.yaml", (
        "name: Alerts\nstatus: inactive\nevents: all\nchannel:\n  type: pushover\n"
        "  user_key: ${env:U}\n  api_token: ${env:T}\n"
    ))
    code, out, _ = run_cli(capsys, "list", str(hooks_dir))
    assert code == 0
    header, *rows, usage = out.splitlines()
    assert header.split() == ["Name", "Endpoint", "Events", "Status", "Created", "On"]
    for column in ("Endpoint", "Events", "Status", "Created On"):
        assert all(len(row) <= header.index(column) or row[header.index(column) - 1] == " "
                   for row in rows), column
    assert rows[0].startswith("Alerts ")
    assert "Pushover" in rows[0]
    assert " all " in rows[0]
    assert "Inactive" in rows[0]
    assert rows[1].startswith("CRM Opens ")
    assert "https://hooks.example.com/in" in rows[1]
    assert "delivered, newsletter_opened" in rows[1]
    assert "Active" in rows[1]
    assert usage == "2 of 100 webhooks"


def test_list_counts_against_the_configured_limit_and_mentions_errors(
    capsys: pytest.CaptureFixture[str], write: WriteFile, hooks_dir: Path, tmp_path: Path
) -> None:
    write("a.yaml")
    write("broken.yaml", "name: [\n")
    config = tmp_path / "mailhooks.yaml"
    config.write_text(f"webhooks_dir: {hooks_dir}\nlimits: {{max_webhooks: 5}}\n")
    code, out, _ = run_cli(capsys, "list", "--config", str(config))
    assert code == 0
    assert out.splitlines()[-2:] == [
        "1 of 5 webhooks", "(1 error(s) not listed: run mailhooks validate)"
    ]


def test_list_json(capsys: pytest.CaptureFixture[str], write: WriteFile, hooks_dir: Path) -> None:
    write("crm/opens.yaml", webhook_yaml("CRM Opens"))
    write("bad.yaml", "name: [\n")
    code, out, _ = run_cli(capsys, "list", "--json", str(hooks_dir))
    assert code == 0
    document = json.loads(out)
    assert document["count"] == 1
    assert document["limit"] == 100
    assert len(document["errors"]) == 1
    assert document["errors"][0].startswith(f"{hooks_dir / 'bad.yaml'}:2:1: ")
    (row,) = document["webhooks"]
    assert {key: row[key] for key in ("id", "name", "endpoint", "events", "status")} == {
        "id": "crm/opens", "name": "CRM Opens", "endpoint": "https://hooks.example.com/in",
        "events": ["delivered"], "status": "active",
    }
    datetime.fromisoformat(row["created_on"])


def test_list_created_on_is_the_file_time_outside_git(
    capsys: pytest.CaptureFixture[str], write: WriteFile, hooks_dir: Path
) -> None:
    path = write("a.yaml")
    moment = datetime(2023, 3, 4, 12, 0, tzinfo=UTC).timestamp()
    os.utime(path, (moment, moment))
    _, out, _ = run_cli(capsys, "list", "--json", str(hooks_dir))
    assert json.loads(out)["webhooks"][0]["created_on"].startswith("2023-03-04T12:00:00")
    _, out, _ = run_cli(capsys, "list", str(hooks_dir))
    assert "2023-03-04" in out.splitlines()[1]


def test_list_created_on_comes_from_git_when_committed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    hooks = repo / "webhooks.d"
    (hooks / "crm").mkdir(parents=True)
    (hooks / "crm" / "opens.yaml").write_text(webhook_yaml("Opens"))
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "add opens", date="2024-01-15T10:30:00+00:00")
    # A later change to the file does not move its creation date.
    (hooks / "crm" / "opens.yaml").write_text(webhook_yaml("Opens", events="all"))
    (hooks / "later.yaml").write_text(webhook_yaml("Later"))
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "more", date="2024-02-20T08:00:00+00:00")
    # Not committed: the file's own time.
    uncommitted = hooks / "new.yaml"
    uncommitted.write_text(webhook_yaml("New"))
    moment = datetime(2023, 3, 4, tzinfo=UTC).timestamp()
    os.utime(uncommitted, (moment, moment))

    code, out, _ = run_cli(capsys, "list", "--json", str(hooks))
    assert code == 0
    created = {row["id"]: row["created_on"][:10] for row in json.loads(out)["webhooks"]}
    assert created == {"crm/opens": "2024-01-15", "later": "2024-02-20", "new": "2023-03-04"}
    _, out, _ = run_cli(capsys, "list", str(hooks))
    assert "2024-01-15" in out


# --- explain ---------------------------------------------------------------------------------


@pytest.fixture
def explained_dir(write: WriteFile, hooks_dir: Path) -> Path:
    write("all.yaml", webhook_yaml("All", events="all"))
    write("bounces.yaml", webhook_yaml("Bounces", events="[bounced]"))
    write("org.yaml", webhook_yaml("Org", events="all",
                                   extra="filters:\n  sending_domain: ['*.example.com']\n"))
    write("off.yaml", webhook_yaml("Off", extra="status: inactive\n"))
    return hooks_dir


def test_explain_text_from_a_file(
    capsys: pytest.CaptureFixture[str], explained_dir: Path, tmp_path: Path
) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(EVENT))
    code, out, err = run_cli(capsys, "explain", str(event_file), str(explained_dir))
    assert code == 0
    assert err == ""
    assert out.splitlines() == [
        "all (All): matched",
        "bounces (Bounces): not matched: event 'delivered' not selected (selects bounced)",
        "off (Off): not matched: inactive",
        "org (Org): not matched: filter sending_domain: 'mail.example.org' is not one of "
        "*.example.com",
        "1 of 4 webhooks matched",
    ]


def test_explain_json_from_stdin(
    capsys: pytest.CaptureFixture[str], explained_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({**EVENT, "event": "bounced"})))
    code, out, _ = run_cli(capsys, "explain", "--json", "-", str(explained_dir))
    assert code == 0
    document = json.loads(out)
    assert document["event"]["event"] == "bounced"
    assert document["errors"] == []
    assert {w["id"]: (w["matched"], w["reason"]) for w in document["webhooks"]} == {
        "all": (True, None),
        "bounces": (True, None),
        "off": (False, "inactive"),
        "org": (False, "filter sending_domain: 'mail.example.org' is not one of *.example.com"),
    }


def test_explain_warns_about_invalid_webhook_files(
    capsys: pytest.CaptureFixture[str], explained_dir: Path, write: WriteFile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write("broken.yaml", "name: [\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(EVENT)))
    code, out, err = run_cli(capsys, "explain", "-", str(explained_dir))
    assert code == 0
    assert out.splitlines()[-1] == "1 of 4 webhooks matched"
    assert err.startswith(f"warning: {explained_dir / 'broken.yaml'}:")


@pytest.mark.parametrize(("stdin", "message"), [
    ("{bad", "mailhooks explain: -:1:2: invalid JSON: "),
    ('{"event": "opened", "email": "a@b.c", "message_id": "m"}', "mailhooks explain: -: event: "),
    ('{"event": "delivered", "email": "a@b.c"}', "mailhooks explain: -: message_id: "),
    ('{"event": "delivered", "email": "a@b.c", "message_id": "m", "colour": "red"}',
     "mailhooks explain: -: colour: "),
    ("[1, 2]", "mailhooks explain: -: "),
])
def test_explain_bad_event_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], explained_dir: Path, monkeypatch: pytest.MonkeyPatch,
    stdin: str, message: str,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code, out, err = run_cli(capsys, "explain", "-", str(explained_dir))
    assert code == 1
    assert out == ""
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_explain_missing_event_file(
    capsys: pytest.CaptureFixture[str], explained_dir: Path, tmp_path: Path
) -> None:
    code, _, err = run_cli(capsys, "explain", str(tmp_path / "none.json"), str(explained_dir))
    assert code == 1
    missing = tmp_path / "none.json"
    assert err == f"mailhooks explain: cannot read {missing}: No such file or directory\n"


def test_explain_invalid_json_as_a_process_has_no_traceback(explained_dir: Path) -> None:
    done = subprocess.run(
        [str(VENV_BIN / "mailhooks"), "explain", "-", str(explained_dir)],
        input="{not json", env=process_env(), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("mailhooks explain: -:1:2: invalid JSON")
    assert len(done.stderr.splitlines()) == 1
