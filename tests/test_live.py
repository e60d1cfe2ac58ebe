"""Building the live set: secrets resolved at load, failures pointing at the reference."""

from __future__ import annotations

import json
from pathlib import Path

from mailhooks.channels.base import Message, Outcome
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.web import WebSender
from mailhooks.live import LiveSet, build
from mailhooks.secrets import SecretSources
from mailhooks.settings import Settings
from mailhooks.templates import Where
from mailhooks.webhooks.load import load_directory

WEBHOOK = """name: CRM
events: all
channel:
  type: web
  url: https://crm.example.com/hook
  headers: {X-Api-Key: "${env:CRM_KEY}"}
"""


def _build(directory: Path, environ: dict[str, str], previous: LiveSet | None = None) -> LiveSet:
    result = load_directory(directory, Settings())
    # Senders only keep the sessions; none is used while building.
    context = ChannelContext(Settings())
    return build(result, previous or LiveSet(), Settings(), context, SecretSources(environ, None))


def test_a_missing_secret_points_at_its_reference(tmp_path: Path) -> None:
    (tmp_path / "crm.yaml").write_text(WEBHOOK)
    live = _build(tmp_path, {})
    assert not live.webhooks
    assert [str(problem) for problem in live.problems] == [
        f"{tmp_path}/crm.yaml:6:25: crm: ${{env:CRM_KEY}}: environment variable CRM_KEY is not set"
    ]


def test_a_secret_that_disappears_keeps_the_last_good_version(tmp_path: Path) -> None:
    (tmp_path / "crm.yaml").write_text(WEBHOOK)
    running = _build(tmp_path, {"CRM_KEY": "k"})
    assert list(running.webhooks) == ["crm"] and running.ok
    after = _build(tmp_path, {}, running)
    assert after.webhooks["crm"] is running.webhooks["crm"]
    assert after.stale == {"crm"} and not after.ok


def test_a_template_failing_at_delivery_points_into_its_file(tmp_path: Path) -> None:
    # validate's sample (recipient@example.com) renders; a real recipient does not.
    (tmp_path / "crm.yaml").write_text(
        "name: CRM\nevents: [delivered]\nchannel:\n  type: web\n  url: https://crm.example.com/hook\n"
        "  payload:\n    email: \"{{ email }}\"\n"
        "    next: |-\n      {% if email != 'recipient@example.com' %}\n"
        "      {{ smtp_code + 1 }}{% endif %}\n")
    live = _build(tmp_path, {})
    sender = live.webhooks["crm"].sender
    assert isinstance(sender, WebSender)
    event = {"event": "delivered", "email": "r@example.org", "message_id": "m1", "event_id": "e1"}
    outcome = sender.build(Message("msg_1", [event], json.dumps(event).encode()))
    assert isinstance(outcome, Outcome) and not outcome.retry
    # The template's second line, as validate would say it: not "crm:2:7".
    assert outcome.error is not None and outcome.error.startswith(
        f"the payload template failed: {tmp_path}/crm.yaml:10:7: 'smtp_code' is missing"), outcome.error


def test_every_channel_knows_where_its_templates_are(tmp_path: Path) -> None:
    (tmp_path / "chat.yaml").write_text(
        "name: Chat\nevents: [bounced]\nchannel:\n  type: discord\n"
        "  url: \"${env:DISCORD_URL}\"\n  content: |\n    Bounced: {{ email }}\n"
        "  embed:\n    title: \"{{ event }}\"\n    description: x\n")
    (tmp_path / "push.yaml").write_text(
        "name: Push\nevents: [bounced]\nchannel:\n  type: pushover\n  user_key: \"${env:USER}\"\n"
        "  api_token: \"${env:TOKEN}\"\n  message: '{{ email }}'\n")
    result = load_directory(tmp_path, Settings())
    chat, push = result.webhooks["chat"].ref, result.webhooks["push"].ref
    assert chat.where(("channel", "content")) == Where(str(tmp_path / "chat.yaml"), 7, 5)
    assert chat.where(("channel", "embed", "title")) == Where(str(tmp_path / "chat.yaml"), 9, 13)
    assert push.where(("channel", "message")) == Where(str(tmp_path / "push.yaml"), 7, 13)
    # A template that is not in the file (a channel's default text) is named by the id.
    assert chat.where(("channel", "text")) == Where("chat")
