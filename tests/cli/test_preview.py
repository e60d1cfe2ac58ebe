"""`mailhooks preview`: the request each channel type would send, every secret masked."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.utils import REPO

from .conftest import Run

# Each secret as the daemon would resolve it: distinct, greppable values.
ENV = {
    "API_KEY": "api-key-4be1d0c7",
    "SIGNING": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "SLACK_URL": "https://hooks.slack.com/services/T0001/B0002/slack-secret-3f9a",
    "TEAMS_URL": "https://prod-42.westeurope.logic.azure.com:443/workflows/wf1/triggers/manual/paths/"
                 "invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=teams-sig-77c1",
    "DISCORD_URL": "https://discord.com/api/webhooks/1234567890/discord-secret-5e2b",
    "TELEGRAM_TOKEN": "123456789:AAH-telegram-secret-token-9d41",
    "PUSHOVER_USER": "uQiRzpo4DXghDmr9QzzfQu27cmVRsG",
}
CREDENTIALS = {"pushover-token": "azGDORePK8gMaC0QOYAMyEEuzJnyUi\n"}
SECRET_VALUES = [*ENV.values(), *(value.strip() for value in CREDENTIALS.values()),
                 "slack-secret-3f9a", "teams-sig-77c1", "discord-secret-5e2b", "telegram-secret-token"]

HOOKS = {
    "crm/contacts.yaml": """\
name: CRM contacts
events: [delivered, bounced]
channel:
  type: web
  url: https://crm.example.com/contacts?tenant=7
  headers: {X-Api-Key: "${env:API_KEY}", Authorization: "Bearer ${env:API_KEY}"}
  secret: "${env:SIGNING}"
  payload:
    email: "{{ email }}"
    properties:
      campaign: "{{ campaign_id }}"
      code: "{{ smtp_code }}"
""",
    "crm/form.yaml": """\
name: CRM form
events: [bounced]
channel:
  type: web
  url: https://crm.example.com/form
  secret: "${env:SIGNING}"
  content_type: form
  payload: {email: "{{ email }}", code: "{{ smtp_code }}", note: "{{ diagnostic }}"}
""",
    "plain.yaml": """\
name: Plain
events: all
channel:
  type: web
  url: https://events.example.com/in
  batch: {max_events: 50}
""",
    "alerts/pushover.yaml": """\
name: Pushover
events: [bounced]
channel:
  type: pushover
  user_key: "${env:PUSHOVER_USER}"
  api_token: "${credential:pushover-token}"
""",
    "alerts/slack.yaml": """\
name: Slack
events: [bounced, complaint]
channel:
  type: slack
  url: "${env:SLACK_URL}"
  batch: {max_events: 100}
""",
    "alerts/teams.yaml": """\
name: Teams
events: [bounced]
channel:
  type: teams
  url: "${env:TEAMS_URL}"
""",
    "alerts/discord.yaml": """\
name: Discord
events: [bounced]
channel:
  type: discord
  url: "${env:DISCORD_URL}"
""",
    "alerts/telegram.yaml": """\
name: Telegram
events: [bounced]
channel:
  type: telegram
  bot_token: "${env:TELEGRAM_TOKEN}"
  chat_id: "-1001234567890"
""",
}


@pytest.fixture
def hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "webhooks.d"
    for relative, text in HOOKS.items():
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        (directory / relative).write_text(text)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for name, value in CREDENTIALS.items():
        (credentials / name).write_text(value)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    return directory


def preview(run: Run, hooks: Path, *args: str) -> tuple[list[str], list[str], str]:
    """The request line, the header lines and the body of a preview that succeeded."""
    ran = run("preview", *args, "--webhooks", str(hooks))
    assert ran.code == 0, ran.err
    for value in SECRET_VALUES:
        assert value not in ran.out and value not in ran.err
    head, _, body = ran.out.partition("\n\n")
    first, *headers = head.splitlines()
    return [first], headers, body


def test_a_web_payload_with_its_headers_masked(run: Run, hooks: Path) -> None:
    [first], headers, body = preview(run, hooks, "crm/contacts", "--event", "bounced")
    assert first == "POST https://crm.example.com/contacts?tenant=7"
    assert headers[:4] == ["Content-Type: application/json", headers[1],
                           "X-Api-Key: [redacted]", "Authorization: Bearer [redacted]"]
    assert headers[1].startswith("User-Agent: mailhooks/")
    names = [line.split(": ", 1)[0] for line in headers]
    assert names[4:] == ["webhook-id", "webhook-timestamp", "webhook-signature"]
    assert headers[-1] == "webhook-signature: v1,[redacted]"
    assert json.loads(body) == {"email": "recipient@example.com",
                                "properties": {"campaign": 123, "code": 550}}
    assert body.startswith('{\n  "email"')  # pretty


def test_a_form_one_field_a_line(run: Run, hooks: Path) -> None:
    _, headers, body = preview(run, hooks, "crm/form")
    assert headers[0] == "Content-Type: application/x-www-form-urlencoded"
    assert body.splitlines() == ["email=recipient@example.com", "code=550",
                                 "note=550 5.1.1 <recipient@example.com>: Recipient address rejected"]


def test_a_batch_of_events_for_a_batching_web_webhook(run: Run, hooks: Path) -> None:
    _, headers, body = preview(run, hooks, "plain", "--batch", "3")
    events = json.loads(body)
    assert [event["event"] for event in events] == ["received", "delivered", "bounced"]
    assert [event["email"] for event in events] == [f"recipient{n}@example.com" for n in (1, 2, 3)]
    assert "test" not in events[0]  # what a real event carries
    assert any(line.startswith("webhook-id: batch_") for line in headers)
    # Without --batch, a batching webhook still sends an array: of one event.
    _, _, body = preview(run, hooks, "plain")
    assert len(json.loads(body)) == 1


def test_pushover_masks_its_form_fields(run: Run, hooks: Path) -> None:
    [first], headers, body = preview(run, hooks, "alerts/pushover")
    assert first == "POST https://api.pushover.net/1/messages.json"
    assert headers == ["Content-Type: application/x-www-form-urlencoded"]
    lines = body.splitlines()
    assert lines[:3] == ["token=[redacted]", "user=[redacted]", "title=Bounced (hard): recipient@example.com"]
    assert any(line.startswith("message=") and "\\n" in line for line in lines)  # one line each


@pytest.mark.parametrize(("hook", "url"), [
    ("alerts/slack", "POST https://hooks.slack.com/[redacted]"),
    ("alerts/teams", "POST https://prod-42.westeurope.logic.azure.com/[redacted]"),
    ("alerts/discord", "POST https://discord.com/[redacted]?wait=true"),
    ("alerts/telegram", "POST https://api.telegram.org/bot[redacted]/sendMessage"),
])
def test_chat_urls_and_tokens_are_masked(run: Run, hooks: Path, hook: str, url: str) -> None:
    [first], headers, body = preview(run, hooks, hook)
    assert first == url
    assert headers == ["Content-Type: application/json; charset=utf-8"]
    assert "recipient@example.com" in body
    json.loads(body)


def test_a_chat_batch_is_one_digest(run: Run, hooks: Path) -> None:
    _, _, body = preview(run, hooks, "alerts/slack", "--batch", "4")
    text = json.loads(body)["text"]
    assert text.startswith("*4 events: 2 bounced, 2 complaint*\n")
    assert text.count("\n• ") == 4


def test_an_unresolved_secret_is_previewed_with_a_placeholder(
    run: Run, hooks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_URL")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    ran = run("preview", "alerts/slack", str(hooks))
    assert ran.code == 0
    assert ran.out.startswith("POST https://hooks.slack.com/[unresolved]\n")
    assert ran.err == ("mailhooks preview: ${env:SLACK_URL}: environment variable SLACK_URL is not set; "
                       "previewing with a placeholder, shown as [unresolved]\n")
    ran = run("preview", "alerts/pushover", str(hooks))
    assert ran.code == 0 and "token=[unresolved]\nuser=[redacted]\n" in ran.out
    assert "${credential:pushover-token}: $CREDENTIALS_DIRECTORY is not set" in ran.err
    ran = run("preview", "alerts/telegram", str(hooks))
    assert ran.code == 0 and "bot[redacted]" in ran.out
    # Each chat service's sender is given a stand-in of the shape it accepts.
    for name, service in (("DISCORD_URL", "discord"), ("TEAMS_URL", "teams"), ("TELEGRAM_TOKEN", "telegram")):
        monkeypatch.delenv(name)
        ran = run("preview", f"alerts/{service}", str(hooks))
        assert ran.code == 0, ran.err
        assert "[unresolved]" in ran.out.splitlines()[0]


def test_errors(run: Run, hooks: Path) -> None:
    ran = run("preview", "alerts/pushover", str(hooks), "--batch", "2")
    assert (ran.code, ran.err) == (2, "mailhooks preview: alerts/pushover does not batch: "
                                      "--batch needs a webhook with batch\n")
    ran = run("preview", "plain", str(hooks), "--batch", "51")
    assert ran.code == 2 and "at most 50 events a batch" in ran.err
    ran = run("preview", "nothing", str(hooks))
    assert (ran.code, ran.err) == (1, f"mailhooks preview: no webhook 'nothing' in {hooks}\n")


def test_a_template_that_fails_is_exit_1(run: Run, hooks: Path) -> None:
    # validate renders the sample recipient@example.com (and a batch without fields);
    # preview's batch numbers its recipients.
    (hooks / "fragile.yaml").write_text(
        "name: Fragile\nevents: [delivered]\nchannel:\n  type: web\n  url: https://x.example.com/\n"
        "  batch: {max_events: 5}\n  secret: \"${env:SIGNING}\"\n  payload:\n"
        "    n: \"{% if email is defined and email != 'recipient@example.com' %}"
        "{{ smtp_code + 1 }}{% endif %}\"\n")
    assert run("preview", "fragile", str(hooks)).code == 0
    ran = run("preview", "fragile", str(hooks), "--batch", "2")
    assert ran.code == 1 and ran.out == ""
    assert ran.err.startswith("mailhooks preview: fragile: nothing would be sent: "
                              f"the payload template failed: {hooks}/fragile.yaml:9:9: ")


def test_a_refused_destination_is_exit_1(run: Run, hooks: Path) -> None:
    (hooks / "local.yaml").write_text(
        "name: Local\nevents: [delivered]\nchannel:\n  type: web\n  url: https://127.0.0.1/in\n")
    ran = run("preview", "local", str(hooks))
    assert ran.code == 1 and "nothing would be sent" in ran.err and "127.0.0.1" in ran.err


def test_options_and_the_directory_in_any_order(run: Run, hooks: Path) -> None:
    # Plain argparse gave DIR nothing once ID was read, then refused it after --event.
    requests = []
    for order in (("crm/contacts", "--event", "bounced", str(hooks)),
                  ("--event", "bounced", "crm/contacts", str(hooks)),
                  ("crm/contacts", str(hooks), "--event", "bounced")):
        ran = run("preview", *order)
        assert ran.code == 0, (order, ran.err)
        head, _, body = ran.out.partition("\n\n")
        requests.append((head.splitlines()[0], json.loads(body)))
    assert requests == [requests[0]] * 3
    assert requests[0][1]["properties"]["code"] == 550  # --event bounced was taken each time


def test_the_bundled_analytics_example_sends_unix_seconds(run: Run) -> None:
    # An import API (Mixpanel's) takes `time` as unix seconds, not ISO 8601 text.
    before = int(time.time())
    ran = run("preview", "analytics-events", str(REPO / "webhooks.d"), "--event", "bounced")
    assert ran.code == 0, ran.err
    [item] = json.loads(ran.out.partition("\n\n")[2])  # a batching webhook: an array
    assert before <= item["properties"]["time"] <= time.time()  # the sample's time is now
