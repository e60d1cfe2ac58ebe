"""Building the live set: secrets resolved at load, failures pointing at the reference."""

from __future__ import annotations

from pathlib import Path

from mailhooks.channels.context import ChannelContext
from mailhooks.live import LiveSet, build
from mailhooks.secrets import SecretSources
from mailhooks.settings import Settings
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
