"""What each host runs (issue 19): the git commit of the webhooks directory, in /status,
`mailhooks status`, the reload line and mailhooks_config_info."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from mailhooks.revision import Revision, git_revision
from tests.utils import DaemonProcess, Receiver, run_cli, wait_until


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=t@example.com", *args],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


def webhook(url: str, name: str = "CRM") -> str:
    return json.dumps({"name": name, "events": "all", "channel": {"type": "web", "url": url}})


def _first_commit(repo: Path, files: dict[str, str]) -> None:
    """A new repository at `repo` whose first commit holds `files` (path: text)."""
    git(repo, "init", "-q", "-b", "main")
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")


async def _read_revision_is(daemon: DaemonProcess, revision: str) -> bool:
    """Whether the last reload read `revision` (loaded or not)."""
    read = (await _config(daemon))["read_revision"]
    return read is not None and bool(read["id"] == revision)


async def _config(daemon: DaemonProcess) -> dict[str, Any]:
    _, status = await daemon.request("GET", "/status")
    config: dict[str, Any] = status["config"]
    return config


async def test_the_revision_follows_the_checkout(daemon: DaemonProcess, receiver: Receiver) -> None:
    repo = daemon.webhooks
    _first_commit(repo, {"crm.yaml": webhook(receiver.url)})
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
    await wait_until(lambda: _read_revision_is(daemon, broken), 15, "the broken commit read")
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


def _index(repo: Path) -> tuple[bytes, int]:
    index = repo / ".git" / "index"
    return index.read_bytes(), index.stat().st_mtime_ns


def test_reading_the_revision_never_writes_the_index(tmp_path: Path) -> None:
    """`git status` refreshes a stale index and writes it back under .git/index.lock unless
    optional locks are off: on a host that would race with a `git pull` of the checkout."""
    repo = tmp_path / "hooks"
    repo.mkdir()
    _first_commit(repo, {"crm.yaml": webhook("https://crm.example.com/in")})
    before = _index(repo)
    # The same content with a new modification time: the index's stat data is stale.
    later = before[1] + 5_000_000_000
    os.utime(repo / "crm.yaml", ns=(later, later))
    (repo / ".git" / "index.lock").write_bytes(b"")  # held, as by a `git pull` under way
    revision = git_revision(repo)
    assert revision == Revision("git", git(repo, "rev-parse", "HEAD"), dirty=False)
    assert (repo / ".git" / "index.lock").read_bytes() == b""
    (repo / ".git" / "index.lock").unlink()
    assert git_revision(repo) == revision
    assert _index(repo) == before


async def test_the_daemons_reload_leaves_the_index_alone(daemon: DaemonProcess, receiver: Receiver) -> None:
    repo = daemon.webhooks
    _first_commit(repo, {"crm.yaml": webhook(receiver.url)})
    await daemon.start()
    before = _index(repo)
    loaded_at = (await _config(daemon))["last_reload"]["at"]
    # Rewritten with the same bytes: a reload, and a stale index for `git status`.
    (repo / "crm.yaml").write_text(webhook(receiver.url))

    async def reloaded() -> bool:
        return bool((await _config(daemon))["last_reload"]["at"] > loaded_at)

    await wait_until(reloaded, 15, "a reload after the rewrite")
    assert (await _config(daemon))["revision"]["dirty"] is False
    assert _index(repo) == before


def _repository_with_webhooks_below(daemon: DaemonProcess, url: str) -> tuple[Path, Path]:
    """A repository of webhooks as one is kept: `webhooks.d/` beside a README; the
    daemon loads `webhooks.d/`. Returns the repository and the directory."""
    repo = daemon.root / "repo"
    hooks = repo / "webhooks.d"
    hooks.mkdir(parents=True)
    daemon.config["webhooks_dir"] = str(hooks)
    _first_commit(repo, {"README.md": "webhooks\n", f"{hooks.relative_to(repo)}/crm.yaml": webhook(url)})
    return repo, hooks


async def test_status_says_the_checkout_is_ahead_of_a_reload_that_failed(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    repo, hooks = _repository_with_webhooks_below(daemon, receiver.url)
    good = git(repo, "rev-parse", "HEAD")
    await daemon.start()
    code, out, _ = await run_cli("status", "--socket", str(daemon.socket))
    assert code == 0 and f"revision: {good} (git)\n" in out
    assert "not loaded yet" not in out

    # A commit that does not load: the host keeps running the good one.
    (hooks / "crm.yaml").write_text("name: [\n")
    git(repo, "commit", "-qam", "broken")
    broken = git(repo, "rev-parse", "HEAD")
    await wait_until(lambda: _read_revision_is(daemon, broken), 15, "the broken commit read")
    # Then the checkout moves on by a commit beside the directory: no reload reads it.
    (repo / "README.md").write_text("webhooks, reviewed\n")
    git(repo, "commit", "-qam", "docs")
    ahead = git(repo, "rev-parse", "HEAD")
    assert (await _config(daemon))["revision"]["id"] == good
    code, out, _ = await run_cli("status", "--socket", str(daemon.socket))
    assert code == 0
    assert f"revision: {good} (git)\n" in out
    assert f"          the last reload read {broken} and refused a file: see the errors above\n" in out
    assert (f"          the checkout is at {ahead}: not loaded yet (a reload is due, or failed: "
            "mailhooks validate)\n") in out


async def test_status_a_commit_beside_the_directory_is_no_reload_due(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    """The README changed, the webhooks did not: what runs is what the checkout holds,
    and status does not send anyone to look for a failed reload."""
    repo, hooks = _repository_with_webhooks_below(daemon, receiver.url)
    good = git(repo, "rev-parse", "HEAD")
    await daemon.start()
    (repo / "README.md").write_text("webhooks, reviewed\n")
    git(repo, "commit", "-qam", "docs")
    docs = git(repo, "rev-parse", "HEAD")
    code, out, _ = await run_cli("status", "--socket", str(daemon.socket))
    assert code == 0 and f"revision: {good} (git)\n" in out
    assert "not loaded yet" not in out
    assert (f"          the checkout is at {docs}, with the same webhooks (only files outside "
            f"{hooks} changed)\n") in out
