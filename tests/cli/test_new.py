"""`mailhooks new`: one valid, commented file, from flags or prompts; refusals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mailhooks.channels.pushover import PushoverChannel
from mailhooks.channels.web import WebChannel
from mailhooks.settings import Settings
from mailhooks.webhooks.edit import PUBLIC_SCHEMA
from mailhooks.webhooks.load import load_webhooks
from mailhooks.webhooks.models import Webhook
from tests.cli.conftest import Run, git

WEB_FLAGS = ("--id", "crm/clicks", "--name", "CRM Clicks", "--events", "newsletter_clicked",
             "--url", "https://crm.example.com/clicks")
PUSHOVER_FLAGS = ("--id", "alerts/complaints", "--name", "Complaints", "--events", "complaint",
                  "--pushover", "--user-key-ref", "${env:PUSHOVER_USER}",
                  "--token-ref", "${credential:pushover-token}")


def loaded(directory: Path, identifier: str) -> Webhook:
    result = load_webhooks(directory, Settings())
    assert result.ok, result.problems
    return result.webhooks[identifier].webhook


@pytest.mark.usefixtures("no_terminal")
def test_web_from_flags(webhooks: Path, run: Run) -> None:
    ran = run("new", str(webhooks), *WEB_FLAGS, "--secret-ref", "${env:CRM_SECRET}",
              "--filter", "sending_domain=mail.example.com,*.example.org",
              "--filter", "dedicated_ip=192.0.2.10")
    assert ran.code == 0, ran.err
    path = webhooks / "crm" / "clicks.yaml"
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=../../schema/webhook.schema.json\n")
    assert text.count("\n# ") >= 5  # a comment per section
    hook = loaded(webhooks, "crm/clicks")
    assert hook.model_dump(exclude_none=True) == {
        "name": "CRM Clicks", "status": "active", "event_type": "email",
        "events": ["newsletter_clicked"],
        "filters": {"sending_domain": ["mail.example.com", "*.example.org"],
                    "dedicated_ip": ["192.0.2.10"]},
        "channel": {"type": "web", "url": "https://crm.example.com/clicks",
                    "secret": "${env:CRM_SECRET}"},
    }
    assert f"Wrote {path}" in ran.out
    assert "3 of 100 webhooks" in ran.out


@pytest.mark.usefixtures("no_terminal")
def test_without_secret_ref_there_is_no_secret(webhooks: Path, run: Run) -> None:
    assert run("new", str(webhooks), *WEB_FLAGS).code == 0
    assert "secret" not in (webhooks / "crm" / "clicks.yaml").read_text()
    channel = loaded(webhooks, "crm/clicks").channel
    assert isinstance(channel, WebChannel) and channel.secret is None


@pytest.mark.usefixtures("no_terminal")
def test_pushover_from_flags(webhooks: Path, run: Run) -> None:
    assert run("new", str(webhooks), *PUSHOVER_FLAGS).code == 0
    channel = loaded(webhooks, "alerts/complaints").channel
    assert isinstance(channel, PushoverChannel)
    assert channel.user_key == "${env:PUSHOVER_USER}"


@pytest.mark.usefixtures("no_terminal")
def test_public_schema_url_without_a_schema_directory(tmp_path: Path, run: Run) -> None:
    directory = tmp_path / "hooks"
    assert run("new", str(directory), *WEB_FLAGS).code == 0
    first = (directory / "crm" / "clicks.yaml").read_text().splitlines()[0]
    assert first == f"# yaml-language-server: $schema={PUBLIC_SCHEMA}"


@pytest.mark.usefixtures("no_terminal")
@pytest.mark.parametrize("name", [
    "yes", "123", "It's #1: best", '"quoted"', "percent % and {braces}", "Ünïcode – dash", "- dash",
    "null", "a: b", "[x]", "*star", "tab\there",
])
def test_names_read_back_as_given(webhooks: Path, run: Run, name: str) -> None:
    flags = list(WEB_FLAGS)
    flags[3] = name
    assert run("new", str(webhooks), *flags).code == 0
    assert loaded(webhooks, "crm/clicks").name == name


@pytest.mark.usefixtures("no_terminal")
@pytest.mark.parametrize("existing", ["crm.yaml", "alerts/bounces.yml"])
def test_refuses_an_id_that_exists(webhooks: Path, run: Run, existing: str) -> None:
    identifier = existing.rsplit(".", 1)[0]
    before = (webhooks / existing).read_bytes()
    flags = list(WEB_FLAGS)
    flags[1] = identifier
    ran = run("new", str(webhooks), *flags)
    assert ran.code != 0
    assert "already exists" in ran.err
    assert (webhooks / existing).read_bytes() == before


@pytest.mark.usefixtures("no_terminal")
def test_refuses_at_the_limit(repo: Path, webhooks: Path, run: Run) -> None:
    config = repo / "mailhooks.yaml"
    config.write_text("limits: {max_webhooks: 2}\n")
    ran = run("new", "--config", str(config), str(webhooks), *WEB_FLAGS)
    assert ran.code == 1
    assert "2 of 2 webhooks" in ran.err
    assert not (webhooks / "crm" / "clicks.yaml").exists()


@pytest.mark.usefixtures("no_terminal")
def test_refuses_a_name_in_use_and_leaves_nothing(webhooks: Path, run: Run) -> None:
    flags = list(WEB_FLAGS)
    flags[3] = "crm opens"
    ran = run("new", str(webhooks), *flags)
    assert ran.code == 1
    assert "is already used by" in ran.err
    assert not list(webhooks.rglob("*clicks*"))
    assert not list(webhooks.rglob(".*"))


@pytest.mark.usefixtures("no_terminal")
def test_refuses_plain_http(webhooks: Path, run: Run) -> None:
    flags = list(WEB_FLAGS)
    flags[-1] = "http://crm.example.com/clicks"
    ran = run("new", str(webhooks), *flags)
    assert ran.code == 1
    assert "plain http is not allowed" in ran.err


@pytest.mark.usefixtures("no_terminal")
@pytest.mark.parametrize(("extra", "message"), [
    (("--secret-ref", "hunter2"), "not a secret reference"),
    (("--events", "opened"), "unknown event 'opened'"),
    (("--filter", "country=de"), "not a filter"),
    (("--id", "../escape"), "is not a webhook id"),
])
def test_bad_flags_are_usage_errors(webhooks: Path, run: Run, extra: tuple[str, ...],
                                    message: str) -> None:
    ran = run("new", str(webhooks), *WEB_FLAGS, *extra)
    assert ran.code == 2
    assert message in ran.err
    assert not (webhooks / "crm" / "clicks.yaml").exists()


@pytest.mark.usefixtures("no_terminal")
def test_missing_flags_without_a_terminal(webhooks: Path, run: Run) -> None:
    ran = run("new", str(webhooks), "--id", "x", "--pushover")
    assert ran.code == 2
    assert "missing --name, --events, --user-key-ref, --token-ref" in ran.err


def test_prompts_for_what_is_missing(
    webhooks: Path, run: Run, terminal: Callable[..., list[str]]
) -> None:
    asked = terminal(
        "crm",            # taken: asked again
        "crm/clicks", "CRM Clicks",
        "opened",         # unknown: asked again
        "delivered, bounced",
        "https://crm.example.com/clicks", "${credential:crm}",
        "sending_node=smtp1", "",
    )
    ran = run("new", str(webhooks))
    assert ran.code == 0, ran.err
    assert len(asked) == 9
    assert "already exists" in ran.err and "unknown event" in ran.err
    hook = loaded(webhooks, "crm/clicks")
    assert hook.events == ["delivered", "bounced"]
    assert hook.filters is not None and hook.filters.sending_node == ["smtp1"]
    assert isinstance(hook.channel, WebChannel) and hook.channel.secret == "${credential:crm}"


def test_all_flags_on_a_terminal_asks_nothing(
    webhooks: Path, run: Run, terminal: Callable[..., list[str]]
) -> None:
    asked = terminal()
    assert run("new", str(webhooks), *WEB_FLAGS).code == 0
    assert asked == []


def test_in_git_prints_add_and_commit(in_git: Path, run: Run) -> None:
    ran = run("new", "webhooks.d", *WEB_FLAGS)
    assert ran.code == 0
    hint = ran.out.split("To commit: ", 1)[1].strip()
    assert hint == ("git add -- webhooks.d/crm/clicks.yaml && git commit -m "
                    "'Add webhook crm/clicks' -- webhooks.d/crm/clicks.yaml")
    assert git(in_git, "rev-list", "--count", "HEAD") == "1\n"
    assert git(in_git, "status", "--porcelain") == "?? webhooks.d/crm/\n"
