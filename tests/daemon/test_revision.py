"""What each host runs (issue 19): the git commit of the webhooks directory, in /status,
`mailhooks status`, the reload line and mailhooks_config_info."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.utils import DaemonProcess, Receiver, run_cli, wait_until


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=t@example.com", *args],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


def webhook(url: str, name: str = "CRM") -> str:
    return json.dumps({"name": name, "events": "all", "channel": {"type": "web", "url": url}})


async def _config(daemon: DaemonProcess) -> dict[str, Any]:
    _, status = await daemon.request("GET", "/status")
    config: dict[str, Any] = status["config"]
    return config


async def test_the_revision_follows_the_checkout(daemon: DaemonProcess, receiver: Receiver) -> None:
    repo = daemon.webhooks
    git(repo, "init", "-q", "-b", "main")
    (repo / "crm.yaml").write_text(webhook(receiver.url))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    first = git(repo, "rev-parse", "HEAD")
    (repo / "crm.yaml").write_text(webhook(receiver.url, "CRM renamed"))
    git(repo, "commit", "-qam", "second")
    second = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", first)
    await daemon.start()
    assert (await _config(daemon))["revision"] == {"kind": "git", "id": first, "dirty": False}
    _, metrics = await daemon.request("GET", "/metrics")
    assert f'mailhooks_config_info{{revision="{first}"}} 1.0' in metrics

    git(repo, "checkout", "-q", second)

    async def running_second() -> bool:
        revision = (await _config(daemon))["revision"]
        return revision is not None and revision["id"] == second

    await wait_until(running_second, 15, "the second commit loaded")
    _, metrics = await daemon.request("GET", "/metrics")
    assert f'mailhooks_config_info{{revision="{second}"}} 1.0' in metrics
    assert first not in metrics
    assert any(line.get("revision") == second for line in daemon.logs() if line.get("event") == "reload")

    # Uncommitted changes show, as "-dirty" and in `mailhooks status`.
    (repo / "extra.yaml").write_text(webhook(receiver.url, "Extra"))
    await wait_until(lambda: _dirty(daemon), 15, "the dirty tree loaded")
    code, out, _ = await run_cli("status", "--socket", str(daemon.socket))
    assert code == 0 and f"revision: {second} (git)" in out
    assert "differ from the commit" in out
    (repo / "extra.yaml").unlink()

    # A checkout with a broken file: the host keeps running the last good revision.
    (repo / "crm.yaml").write_text("name: [\n")
    git(repo, "commit", "-qam", "broken")
    broken = git(repo, "rev-parse", "HEAD")

    async def read_broken() -> bool:
        read = (await _config(daemon))["read_revision"]
        return read is not None and read["id"] == broken

    await wait_until(read_broken, 15, "the broken commit read")
    assert (await _config(daemon))["revision"]["id"] == second
    code, out, _ = await run_cli("status", "--socket", str(daemon.socket))
    assert f"the last reload read {broken} and refused a file" in out


async def _dirty(daemon: DaemonProcess) -> bool:
    revision = (await _config(daemon))["revision"]
    return revision is not None and revision["dirty"]


async def test_outside_git_the_revision_is_a_content_hash(daemon: DaemonProcess, receiver: Receiver) -> None:
    (daemon.webhooks / "crm.yaml").write_text(webhook(receiver.url))
    await daemon.start()
    revision = (await _config(daemon))["revision"]
    assert revision["kind"] == "content" and revision["id"].startswith("sha256:")
