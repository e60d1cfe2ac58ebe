"""Smaller leaks (issue 15): what the daemon and the CLI show, and the files it leaves.

Before: /webhooks and `list --json` printed a URL's query string (?token=…); the Test
button returned the receiver's answer as it was; outside systemd the state directory was
0755 and spool.db 0644; a whsec_ secret was decoded loosely (a typo silently changed the
key) and had no minimum length; a FIFO named x.yaml hung `validate`.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from mailhooks.cli import main
from tests.utils import DaemonProcess, Receiver, run_cli

TOKEN_URL = "https://crm.example.com/hook?token=s3cr3t-in-the-query"


async def test_no_query_string_in_listings(daemon: DaemonProcess, short_tmp: Path) -> None:
    daemon.write_document("crm", {"name": "CRM", "events": "all",
                                  "channel": {"type": "web", "url": TOKEN_URL}})
    await daemon.start()
    _, report = await daemon.request("GET", "/webhooks")
    assert report["webhooks"][0]["endpoint"] == "https://crm.example.com/hook"
    assert "s3cr3t" not in json.dumps(report)
    code, out, _ = await run_cli("list", "--json", str(daemon.webhooks))
    assert code == 0 and "s3cr3t" not in out and "https://crm.example.com/hook" in out


async def test_the_test_button_scrubs_and_withholds(daemon: DaemonProcess, receiver: Receiver) -> None:
    daemon.env["API_KEY"] = "api-key-echoed-back-0123"
    daemon.add_webhook("echo", receiver.url, channel={"headers": {"X-Api-Key": "${env:API_KEY}"}})
    await daemon.start()
    _, report = await daemon.request("POST", "/webhooks/echo/test")
    assert report["ok"] and report["body"] == ""  # 127.0.0.1 is private: status only
    assert "api-key-echoed-back" not in json.dumps(report)


async def test_state_directory_and_spool_are_private(daemon: DaemonProcess) -> None:
    await daemon.start()
    modes = _modes(Path(daemon.config["state_dir"]))
    assert modes["."] == 0o700
    assert modes["spool.db"] == 0o600 and all(mode & 0o077 == 0 for mode in modes.values()), modes


async def test_a_spool_left_readable_by_an_older_version_is_made_private(daemon: DaemonProcess) -> None:
    await daemon.start()
    await daemon.stop()
    state = Path(daemon.config["state_dir"])
    for name in _modes(state):
        if name != ".":
            (state / name).chmod(0o644)  # as an older version, or a restore from a backup, left it
    await daemon.start()
    modes = _modes(state)
    assert all(mode & 0o077 == 0 for name, mode in modes.items() if name != "."), modes


def _modes(directory: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(directory.stat().st_mode)}
    found.update({path.name: stat.S_IMODE(path.stat().st_mode) for path in directory.iterdir()
                  if path.name.startswith("spool.db")})
    return found


async def test_a_loose_or_short_whsec_secret_refuses_the_webhook(
    daemon: DaemonProcess, receiver: Receiver,
) -> None:
    daemon.env.update(TYPO="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw!", SHORT="whsec_c2hvcnQ=")
    daemon.add_webhook("typo", receiver.url, channel={"secret": "${env:TYPO}"})
    daemon.add_webhook("short", receiver.url, channel={"secret": "${env:SHORT}"})
    await daemon.start(config_ok=False)
    _, report = await daemon.request("GET", "/webhooks")
    assert report["webhooks"] == []
    errors = "\n".join(report["errors"])
    assert "must be base64 after the prefix" in errors and "at least 16 bytes" in errors
    assert "MfKQ9r8" not in errors and "c2hvcnQ" not in errors


def test_a_fifo_named_yaml_does_not_hang_validate(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "x.yaml")
    code = main(["validate", str(tmp_path)])
    assert code == 1


async def test_a_link_to_a_credential_file_is_not_read(tmp_path: Path) -> None:
    # Git carries links: a pull request could add x.yaml pointing at a credential file,
    # and the loader's errors would show its keys (S3CRETKEY: unknown key).
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "crm-signing-secret").write_text("S3CRETKEY: hunter2\n")
    hooks = tmp_path / "webhooks.d"
    hooks.mkdir()
    (hooks / "exfil.yaml").symlink_to(credentials / "crm-signing-secret")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "real.yaml").write_text(
        "name: Real\nevents: [delivered]\nchannel: {type: web, url: 'https://crm.example.com/in'}\n")
    (hooks / "linked.yaml").symlink_to(shared / "real.yaml")  # a link to a webhook file: read
    code, out, err = await run_cli("validate", str(hooks))
    assert code == 1, (out, err)
    assert f"{hooks / 'exfil.yaml'}:1:1: a link to a file that is not a webhook file" in out
    assert "S3CRETKEY" not in out + err and "hunter2" not in out + err
    code, out, _ = await run_cli("list", "--json", str(hooks))
    assert "S3CRETKEY" not in out
    assert [row["id"] for row in json.loads(out)["webhooks"]] == ["linked"]
