"""Example-driven loader tests, as check-jsonschema does them: a new case is a new file.

`examples/positive/` holds valid webhook files. Each file in `examples/negative/` starts
with one or more `# expect: LINE:COL: part of the message` lines; loading the file alone
must report exactly those positions, each with its message.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from mailhooks.channels.base import WebhookRef
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.registry import build_sender
from mailhooks.config_file import load_settings
from mailhooks.documents.yaml import decode, parse
from mailhooks.secrets import Resolved, references
from mailhooks.settings import Grant, Settings
from mailhooks.webhooks.load import LoadResult, load_webhooks

from .conftest import REPO

EXAMPLES = Path(__file__).parent / "examples"
POSITIVE = sorted((EXAMPLES / "positive").glob("*.y*ml"))
NEGATIVE = sorted((EXAMPLES / "negative").glob("*.y*ml"))
EXPECT = re.compile(r"^# expect: (\d+):(\d+): (.+)$")


def expectations(path: Path) -> list[tuple[int, int, str]]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = EXPECT.match(line)
        if match is None:
            break
        found.append((int(match[1]), int(match[2]), match[3]))
    return found


def load_alone(example: Path, tmp_path: Path) -> tuple[list[str], list[tuple[int, int, str]]]:
    directory = tmp_path / "webhooks.d"
    directory.mkdir()
    shutil.copy(example, directory / example.name)
    result = load_webhooks(directory, Settings())
    problems = [(p.position.line, p.position.column, p.message) for p in result.problems]
    assert all(p.file == str(directory / example.name) for p in result.problems)
    return sorted(result.webhooks), problems


def test_there_are_examples() -> None:
    assert len(POSITIVE) >= 5
    assert len(NEGATIVE) >= 20


@pytest.mark.parametrize("example", POSITIVE, ids=lambda path: path.name)
def test_positive_example_loads(example: Path, tmp_path: Path) -> None:
    webhooks, problems = load_alone(example, tmp_path)
    assert problems == []
    assert webhooks == [example.stem]


@pytest.mark.parametrize("example", POSITIVE, ids=lambda path: path.name)
def test_positive_example_is_valid_for_the_committed_schema(example: Path) -> None:
    schema = json.loads((REPO / "schema" / "webhook.schema.json").read_text(encoding="utf-8"))
    data = parse(decode(example.read_bytes())).data
    jsonschema.Draft202012Validator(schema).validate(data)


@pytest.mark.parametrize("example", NEGATIVE, ids=lambda path: path.name)
def test_negative_example_reports_exactly_what_it_expects(example: Path, tmp_path: Path) -> None:
    expected = expectations(example)
    assert expected, f"{example.name} has no '# expect: LINE:COL: message' line"
    webhooks, problems = load_alone(example, tmp_path)
    assert webhooks == []
    positions = sorted({(line, column) for line, column, _ in problems})
    assert positions == sorted({(line, column) for line, column, _ in expected}), problems
    for line, column, part in expected:
        messages = [message for at_line, at_column, message in problems
                    if (at_line, at_column) == (line, column)]
        assert any(part in message for message in messages), (part, messages)


def test_every_problem_is_one_line(tmp_path: Path) -> None:
    directory = tmp_path / "all"
    directory.mkdir()
    for example in NEGATIVE:
        shutil.copy(example, directory / example.name)
    result = load_webhooks(directory, Settings())
    assert len({p.file for p in result.problems}) == len(NEGATIVE)
    for problem in result.problems:
        assert "\n" not in str(problem)
        assert "Traceback" not in problem.message


def _demo_credentials() -> tuple[str, list[str]]:
    """scripts/serve's placeholder function and the credentials it makes."""
    script = (REPO / "scripts" / "serve").read_text(encoding="utf-8")
    function = re.search(r"^placeholder\(\) \{\n.*?^\}$", script, re.MULTILINE | re.DOTALL)
    names = re.search(r"for name in (.*?); do", script, re.DOTALL)
    assert function is not None and names is not None
    return function[0], names[1].replace("\\\n", " ").split()


def test_the_bundled_webhooks_go_live_with_the_shipped_config_and_demo_credentials() -> None:
    """Every webhooks.d example is valid under systemd/mailhooks.yaml (its grants included),
    and the daemon builds its sender from the credentials `scripts/serve` makes."""
    settings = load_settings(REPO / "systemd" / "mailhooks.yaml")
    result = load_webhooks(REPO / "webhooks.d", settings)
    assert result.problems == []
    _builds_senders_with_demo_credentials(result, settings)


def _builds_senders_with_demo_credentials(result: LoadResult, settings: Settings) -> None:
    function, names = _demo_credentials()
    values = {"${env:CRM_API_KEY}": "demo-api-key"}
    for loaded in result.webhooks.values():
        for reference in references(loaded.webhook.channel.secret_texts()):
            if reference.startswith("${credential:"):
                name = reference.removeprefix("${credential:").removesuffix("}")
                assert name in names, f"scripts/serve makes no {name}"
                made = subprocess.run(["bash", "-c", f'{function}\nplaceholder "$1"', "_", name],
                                      capture_output=True, text=True, check=True)
                values[reference] = made.stdout.removesuffix("\n")
    context = ChannelContext(settings)
    for identifier, loaded in result.webhooks.items():
        build_sender(WebhookRef(identifier, loaded.webhook.name), loaded.webhook.channel,
                     Resolved(values), context)


def _demo_directory(into: Path) -> Path:
    """The webhooks directory `scripts/serve` makes: a link to each entry of webhooks.d/,
    and demo/ to scripts/demo/."""
    for entry in (REPO / "webhooks.d").iterdir():
        if not entry.name.startswith("."):
            (into / entry.name).symlink_to(entry)
    (into / "demo").symlink_to(REPO / "scripts" / "demo")
    return into


def test_the_demo_runs_every_example_and_the_demo_webhook(tmp_path: Path) -> None:
    """Under scripts/demo.yaml, what scripts/serve loads is every example with its own id,
    and demo/listen, which is kept out of webhooks.d/: its plain-http loopback URL is valid
    only where the config allows it."""
    settings = load_settings(REPO / "scripts" / "demo.yaml")
    result = load_webhooks(_demo_directory(tmp_path), settings)
    assert result.problems == []
    examples = load_webhooks(REPO / "webhooks.d", Settings()).webhooks
    assert sorted(result.webhooks) == sorted([*examples, "demo/listen"])
    _builds_senders_with_demo_credentials(result, settings)


def test_the_demo_grants_what_the_shipped_config_does_and_its_own() -> None:
    demo = load_settings(REPO / "scripts" / "demo.yaml").secrets.grants
    shipped = load_settings(REPO / "systemd" / "mailhooks.yaml").secrets.grants
    assert demo is not None and shipped is not None
    assert demo[0] == Grant(secrets=["${credential:demo-signing-secret}"], webhooks=["demo/listen"],
                            destinations=["http://127.0.0.1:8426"])
    assert demo[1:] == shipped, (
        "scripts/demo.yaml's grants, after the demo's own, are systemd/mailhooks.yaml's: copy them"
    )


def test_the_demo_webhook_posts_where_scripts_serve_listens() -> None:
    from mailhooks.cli.listen import DEFAULT_PORT

    schema = json.loads((REPO / "schema" / "webhook.schema.json").read_text(encoding="utf-8"))
    webhook = parse(decode((REPO / "scripts" / "demo" / "listen.yaml").read_bytes())).data
    jsonschema.Draft202012Validator(schema).validate(webhook)
    assert webhook["channel"]["url"] == f"http://127.0.0.1:{DEFAULT_PORT}/mailhooks"
    assert webhook["channel"]["secret"] == "${credential:demo-signing-secret}"
    script = (REPO / "scripts" / "serve").read_text(encoding="utf-8")
    assert f"mailhooks listen --port {DEFAULT_PORT} --secret '${{credential:demo-signing-secret}}'" in script
